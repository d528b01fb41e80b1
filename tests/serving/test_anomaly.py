"""The anomaly detector on synthetic traffic, with an explicit clock: steady traffic is quiet,
a latency jump raises one event and its return resolves it, 5xx and 4xx bursts, the minimum
request count, the absolute floor, hysteresis, learning, shutdown, settings."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from batchscore.errors import SpecError
from batchscore.serving.anomaly import AnomalyConfig, AnomalyDetector, log_event
from batchscore.state.events import Event

T0 = 1_700_000_000.0


class Traffic:
    """Feeds a detector requests at ``rps`` per (fake) second; remembers the time."""

    def __init__(self, detector: AnomalyDetector, seed: int = 0) -> None:
        self.detector, self.now = detector, T0
        self.events: list[Event] = []
        self.rng = np.random.default_rng(seed)
        detector.listeners.append(self.events.append)

    def run(self, seconds: float, *, rps: float = 10, latency: float = 0.02,
            jitter: float = 0.1, status: int = 200, every: int = 0,
            every_status: int = 500) -> list[Event]:
        """``every``: each every-th request answers ``every_status`` instead."""
        before = len(self.events)
        for i in range(round(seconds * rps)):
            self.now += 1 / rps
            value = latency * (1 + jitter * self.rng.uniform(-1, 1))
            code = every_status if every and i % every == every - 1 else status
            self.detector.observe(value, code, now=self.now)
        return self.events[before:]


def make(**config: object) -> Traffic:
    detector = AnomalyDetector("toy/3", AnomalyConfig(**config),  # type: ignore[arg-type]
                               details={"model": "toy", "version": "3"},
                               clock=lambda: traffic.now)
    traffic = Traffic(detector)
    return traffic


def test_steady_traffic_raises_nothing_and_learns_its_baseline():
    t = make()
    assert t.detector.baseline(T0) is None  # learning
    assert t.run(600, latency=0.02, jitter=0.5) == []
    baseline = t.detector.baseline(t.now)
    assert baseline is not None and 0.02 < baseline < 0.03  # p95 of 20 ms +- 50%
    assert t.detector.active() == [] and not t.detector.is_active("latency")


def test_a_latency_jump_raises_one_event_and_its_return_resolves_it():
    t = make()
    t.run(300, latency=0.05)
    raised = t.run(120, latency=0.4)
    assert len(raised) == 1  # one event, however long it lasts
    event = raised[0]
    assert (event.source, event.kind, event.severity, event.state, event.subject) == (
        "serving", "latency", "warning", "raised", "toy/3")
    assert t.detector.is_active("latency")
    d = event.details
    assert d["model"] == "toy" and d["version"] == "3" and d["quantile"] == 0.95
    assert 0.05 < d["baseline_s"] < 0.06 and d["latency_s"] > 3 * d["baseline_s"]
    assert d["ratio"] == pytest.approx(d["latency_s"] / d["baseline_s"], rel=1e-3)
    assert d["window_s"] == 60 and d["requests"] >= 20 and d["baseline_samples"] >= 3
    assert re.fullmatch(rf"p95 latency \d+ ms over the last 60 s \({d['requests']} requests\), "
                        r"\d+\.\dx the baseline 5\d ms", event.message), event.message
    assert f"{d['latency_s'] * 1000:.0f} ms" in event.message
    # within the first seconds of the jump, not a window later
    assert event.created_at - (T0 + 300) < 5

    resolved = t.run(180, latency=0.05)
    assert len(resolved) == 1
    end = resolved[0]
    assert (end.kind, end.state, end.severity) == ("latency", "resolved", "info")
    assert re.search(r"x the baseline 5\d ms: back to normal \(after 2m5\ds\)$", end.message)
    assert end.details["raised_at"] == event.created_at
    assert end.details["baseline_s"] == d["baseline_s"]  # the baseline stayed frozen
    assert not t.detector.is_active("latency")
    assert t.run(300, latency=0.05) == []  # and the slow minutes did not move the baseline
    assert 0.05 < (t.detector.baseline(t.now) or 0) < 0.06


def test_the_absolute_floor_keeps_fast_models_quiet():
    t = make(latency_floor_s=0.05)
    t.run(300, latency=0.001)
    assert t.run(120, latency=0.004) == []  # 4x, but 4 ms is under the 50 ms floor
    raised = t.run(60, latency=0.08)
    assert [(e.kind, e.state) for e in raised] == [("latency", "raised")]


def test_no_latency_event_while_learning():
    t = make()
    assert t.run(30, latency=0.001) == []
    assert t.run(30, latency=1.0) == []  # no baseline sample one window old yet: learning
    assert t.detector.baseline(t.now) is None and not t.detector.is_active("latency")


def test_a_5xx_burst_raises_a_critical_error_rate_event_once():
    t = make()
    t.run(120)
    raised = t.run(60, every=10)  # 10% answered 500
    assert len(raised) == 1
    event = raised[0]
    assert (event.kind, event.severity, event.state) == ("error_rate", "critical", "raised")
    assert event.details["threshold"] == 0.05 and event.details["rate"] > 0.05
    assert event.message.startswith("5xx error rate ")
    assert "over the last 60 s (" in event.message and event.message.endswith("above 5.0%")
    assert t.run(60, every=10) == []  # still failing: no second event
    resolved = t.run(120)
    assert [(e.kind, e.state) for e in resolved] == [("error_rate", "resolved")]
    assert "back to normal" in resolved[0].message
    assert t.detector.recent_events() == [resolved[0], event]  # newest first


def test_hysteresis_an_error_rate_near_the_threshold_does_not_flap():
    t = make()
    t.run(60, every=12)  # 8.3%: raised
    assert t.detector.is_active("error_rate")
    # 4%: under the threshold but above 2/3 of it: still on, no event storm
    assert t.run(600, every=25) == []
    assert t.detector.is_active("error_rate")
    assert [e.state for e in t.run(120, every=50)] == ["resolved"]  # 2%
    assert [e.kind for e in t.events] == ["error_rate", "error_rate"]


def test_nothing_is_judged_below_the_minimum_request_count():
    t = make(min_requests=20)
    assert t.run(60, rps=0.3, status=500) == []  # 18 failing requests in the window
    assert t.run(60, rps=0.3, latency=5.0) == []
    assert t.detector.active() == []
    raised = t.run(10, rps=3, status=500)  # now 20+ requests, most of them failed
    assert [e.kind for e in raised] == ["error_rate"]


def test_an_anomaly_stays_on_while_there_is_too_little_traffic_to_judge():
    t = make()
    t.run(60, status=500)
    assert t.detector.is_active("error_rate")
    assert t.run(300, rps=0.05) == []  # a trickle of good requests: cannot judge
    assert t.detector.is_active("error_rate")


def test_client_errors_are_a_lower_severity_event_of_their_own():
    t = make()
    t.run(60)
    raised = t.run(60, every=2, every_status=400) + t.run(60, status=422)
    assert [(e.kind, e.severity) for e in raised] == [("client_error_rate", "warning")]
    assert raised[0].message.endswith("clients send requests the model refuses")
    assert not t.detector.is_active("error_rate")
    off = make(client_error_rate=None)
    assert off.run(120, status=400) == []


def test_close_resolves_what_is_still_on_and_stops_judging():
    t = make()
    t.run(60, status=500)
    made = t.detector.close("the deployment was swapped")
    assert [(e.kind, e.state) for e in made] == [("error_rate", "resolved")]
    assert re.fullmatch(r"no longer watched: the deployment was swapped \(after 5\ds\)",
                        made[0].message), made[0].message
    assert made[0].details["reason"] == "the deployment was swapped"
    assert t.run(60, status=500) == [] and t.detector.close() == []


def test_a_failing_listener_is_logged_and_does_not_stop_the_others(caplog):
    t = make()

    def broken(_event: Event) -> None:
        raise RuntimeError("listener down")

    t.detector.listeners.insert(0, broken)
    with caplog.at_level(logging.ERROR, "batchscore.serving.anomaly"):
        raised = t.run(60, status=500)
    assert [e.kind for e in raised] == ["error_rate"]
    assert "an anomaly event listener failed" in caplog.text


def test_log_event_says_what_and_about_whom(caplog):
    t = make()
    with caplog.at_level(logging.WARNING, "batchscore.serving.anomaly"):
        for event in t.run(60, status=500):
            log_event(event)
    assert caplog.records[0].levelno == logging.ERROR
    assert caplog.records[0].getMessage().startswith(
        "anomaly toy/3 (error_rate): 5xx error rate 100.0%")


def test_the_window_holds_at_most_capacity_requests():
    t = make(capacity=50, min_requests=20)
    t.run(30, rps=10, status=500)
    assert t.detector.is_active("error_rate")
    # 50 good requests push every failure out of the ring buffer
    assert [e.state for e in t.run(8, rps=10)] == ["resolved"]


def test_checks_are_spaced_by_check_every_s():
    t = make(check_every_s=30)
    t.run(10, status=500)  # the first request checks (too few), the next check is at 30 s
    assert t.events == []
    t.run(25, status=500)
    assert [e.kind for e in t.events] == ["error_rate"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("window_s", 0, "anomaly setting window_s must be a positive number, got 0"),
    ("error_rate", 5, "anomaly setting error_rate must be a fraction between 0 and 1"),
    ("client_error_rate", 1.5, "client_error_rate must be a fraction between 0 and 1, or None"),
    ("latency_quantile", 0.3, "latency_quantile must be a fraction from 0.5 to below 1"),
    ("latency_factor", 1.0, "anomaly setting latency_factor must be above 1, got 1.0"),
    ("latency_floor_s", -1, "latency_floor_s must be a number >= 0, got -1"),
    ("min_requests", 0, "min_requests must be an integer >= 1, got 0"),
    ("min_requests", 2.5, "min_requests must be an integer >= 1, got 2.5"),
    ("capacity", 10, "capacity must be an integer >= min_requests (20), got 10"),
    ("resolve_ratio", 0, "resolve_ratio must be a fraction above 0 and at most 1"),
    ("window_s", float("nan"), "window_s must be a positive number, got nan"),
])
def test_bad_settings_are_refused_by_name(field, value, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AnomalyConfig(**{field: value})


def test_settings_from_the_environment():
    config = AnomalyConfig.from_env({"BATCHSCORE_ANOMALY_WINDOW_S": "30",
                                     "BATCHSCORE_ANOMALY_MIN_REQUESTS": " 5 ",
                                     "BATCHSCORE_ANOMALY_CLIENT_ERROR_RATE": "off",
                                     "BATCHSCORE_ANOMALY_LATENCY_FLOOR_S": "",
                                     "OTHER": "x"})
    assert (config.window_s, config.min_requests, config.client_error_rate) == (30.0, 5, None)
    assert config.latency_floor_s == AnomalyConfig().latency_floor_s
    with pytest.raises(SpecError, match=r"\$BATCHSCORE_ANOMALY_MIN_REQUESTS must be an "
                       r"integer, got 'many'"):
        AnomalyConfig.from_env({"BATCHSCORE_ANOMALY_MIN_REQUESTS": "many"})
    with pytest.raises(SpecError, match=r"error_rate must be a fraction .* \(from "
                       r"\$BATCHSCORE_ANOMALY_\* variables\)"):
        AnomalyConfig.from_env({"BATCHSCORE_ANOMALY_ERROR_RATE": "7"})
