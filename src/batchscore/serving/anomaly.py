"""Latency and error-rate anomalies of the online scoring service, raised as events.

The scoring app's middleware hands every scoring request (``POST /invocations``,
``POST /v2/models/{name}/infer``) to :meth:`AnomalyDetector.observe`: its latency and status
go into a ring buffer (numpy arrays, O(1) per request, a lock held for a few stores). At most
once per ``check_every_s`` the same call judges the recent window (numpy over the buffer,
well under a millisecond) and, when an anomaly starts or ends, hands an
:class:`~batchscore.state.events.Event` to its listeners, outside the lock. The listeners
queue them (the state database is written by a background thread) and log them.

The rules, with the defaults of :class:`AnomalyConfig`; "the window" is the last
``window_s`` = 60 s (or the last ``capacity`` requests, if fewer), and nothing is judged
with fewer than ``min_requests`` = 20 requests in it:

- ``error_rate`` (severity critical): the share of 5xx answers in the window is above
  ``error_rate`` = 5%. These are the service's own failures (the model raised).
- ``client_error_rate`` (severity warning): the share of 4xx answers is above
  ``client_error_rate`` = 50%. Refused requests are the client's fault, so this is a
  lower-severity event with a higher threshold (``None`` turns it off).
- ``latency`` (severity warning): the ``latency_quantile`` (p95) of the window's non-5xx
  requests is above ``latency_factor`` = 3 times the baseline *and* above the absolute floor
  ``latency_floor_s`` = 50 ms (so that 1 ms -> 3 ms is no anomaly). The baseline is the
  median of the window's p95 sampled every ``sample_every_s`` = 10 s over the last
  ``baseline_horizon_s`` = 30 min, counting only samples at least one window old (so the window
  judged is not its own baseline); until ``min_baseline_samples`` = 3 exist the detector is
  learning and raises no latency event. While a latency anomaly lasts the baseline is
  frozen; samples taken during its onset are discarded.

Each anomaly raises one ``raised`` event when it starts and one ``resolved`` event when it
ends. Hysteresis keeps it from flapping: it ends only when its measure falls below
``resolve_ratio`` = 2/3 of the threshold that raised it (for latency: below 2/3 of
``latency_factor`` x baseline, or below 2/3 of the floor). With too few requests in the
window nothing changes: an ongoing anomaly stays on until there is traffic to judge.
:meth:`AnomalyDetector.close` (the app's shutdown) resolves what is still on.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..errors import SpecError
from ..state.events import Event

__all__ = ["KINDS", "AnomalyConfig", "AnomalyDetector", "log_event"]

KINDS = ("latency", "error_rate", "client_error_rate")
SOURCE = "serving"
ENV_PREFIX = "BATCHSCORE_ANOMALY_"
_SEVERITY = {"latency": "warning", "error_rate": "critical", "client_error_rate": "warning"}
log = logging.getLogger("batchscore.serving.anomaly")


@dataclass(frozen=True)
class AnomalyConfig:
    """The thresholds of :class:`AnomalyDetector` (see the module's docstring for the rules).

    Every field can be set by an environment variable ``BATCHSCORE_ANOMALY_<FIELD>`` (upper
    case) through :meth:`from_env`; ``client_error_rate`` takes ``off`` there."""

    window_s: float = 60.0
    min_requests: int = 20
    error_rate: float = 0.05
    client_error_rate: float | None = 0.5
    latency_quantile: float = 0.95
    latency_factor: float = 3.0
    latency_floor_s: float = 0.05
    baseline_horizon_s: float = 1800.0
    sample_every_s: float = 10.0
    min_baseline_samples: int = 3
    resolve_ratio: float = 2 / 3
    check_every_s: float = 1.0
    capacity: int = 8192

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise SpecError(f"anomaly setting {name} must be {rule}, got "
                                f"{getattr(self, name)!r}")

        for name in ("window_s", "latency_factor", "baseline_horizon_s", "sample_every_s"):
            value = getattr(self, name)
            need(_number(value) and value > 0, name, "a positive number")
        for name in ("latency_floor_s", "check_every_s"):
            value = getattr(self, name)
            need(_number(value) and value >= 0, name, "a number >= 0")
        for name in ("min_requests", "min_baseline_samples"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name,
                 "an integer >= 1")
        need(isinstance(self.capacity, int) and not isinstance(self.capacity, bool)
             and self.capacity >= self.min_requests, "capacity",
             f"an integer >= min_requests ({self.min_requests})")
        need(_number(self.error_rate) and 0 < self.error_rate < 1, "error_rate",
             "a fraction between 0 and 1 (0.05 is 5%)")
        need(self.client_error_rate is None or (_number(self.client_error_rate)
                                                and 0 < self.client_error_rate < 1),
             "client_error_rate", "a fraction between 0 and 1, or None (off)")
        need(_number(self.latency_quantile) and 0.5 <= self.latency_quantile < 1,
             "latency_quantile", "a fraction from 0.5 to below 1 (0.95 is p95)")
        need(self.latency_factor > 1, "latency_factor", "above 1")
        need(_number(self.resolve_ratio) and 0 < self.resolve_ratio <= 1, "resolve_ratio",
             "a fraction above 0 and at most 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AnomalyConfig:
        """The defaults, overridden by ``BATCHSCORE_ANOMALY_*`` variables of ``environ``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            raw = environ.get(var)
            if raw is None or not raw.strip():
                continue
            raw = raw.strip()
            if f.name == "client_error_rate" and raw.lower() in ("off", "none"):
                values[f.name] = None
                continue
            integer = f.name in ("min_requests", "min_baseline_samples", "capacity")
            try:
                values[f.name] = int(raw) if integer else float(raw)
            except ValueError:
                kind = "an integer" if integer else "a number"
                raise SpecError(f"${var} must be {kind}, got {raw!r}") from None
        try:
            return cls(**values)
        except SpecError as exc:
            raise SpecError(f"{exc} (from ${ENV_PREFIX}* variables)") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class _Window:
    """What the window holds at one check."""

    now: float
    requests: int
    server_errors: int
    client_errors: int
    latencies: np.ndarray  # of the non-5xx requests


Listener = Callable[[Event], object]


class AnomalyDetector:
    """Judges a scoring service's recent requests; see the module's docstring.

    ``subject`` names what is served (``NAME/VERSION``); ``details`` are added to every
    event's details (model, version, host, pid); ``clock`` gives UNIX seconds and ``timer``
    is the clock that the app measures each request's latency with (tests pass their own, so
    that "slow" does not depend on how busy the machine is). ``listeners`` get each event,
    outside the lock; one that raises is logged and does not stop the others."""

    def __init__(self, subject: str, config: AnomalyConfig | None = None, *,
                 details: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.perf_counter,
                 listeners: list[Listener] | None = None, recent: int = 50) -> None:
        self.subject = subject
        self.config = config or AnomalyConfig()
        self.details = dict(details or {})
        self.clock = clock
        self.timer = timer
        self.listeners: list[Listener] = list(listeners or [])
        self.recent: deque[Event] = deque(maxlen=recent)
        size = self.config.capacity
        self._t = np.full(size, -np.inf)
        self._latency = np.zeros(size)
        self._status = np.zeros(size, dtype=np.int16)
        self._next = 0
        self._lock = threading.Lock()
        self._last_check = -math.inf
        self._last_sample = -math.inf
        self._samples: deque[tuple[float, float]] = deque()
        self._active: dict[str, Event] = {}
        self._frozen_baseline: float | None = None
        self._closed = False

    # --- the request path ---------------------------------------------------------------

    def observe(self, latency_s: float, status: int, now: float | None = None) -> None:
        """Record one request; judge the window when a check is due."""
        now = self.clock() if now is None else now
        with self._lock:
            i = self._next
            self._t[i], self._latency[i], self._status[i] = now, latency_s, status
            self._next = (i + 1) % self.config.capacity
            due = now - self._last_check >= self.config.check_every_s
        if due:
            self.check(now)

    # --- judging ------------------------------------------------------------------------

    def check(self, now: float | None = None) -> list[Event]:
        """Judge the window now; returns (and hands to the listeners) the events it makes."""
        now = self.clock() if now is None else now
        with self._lock:
            if self._closed:
                return []
            self._last_check = now
            window = self._window(now)
            made = [e for e in (self._judge_errors(window), self._judge_clients(window),
                                self._judge_latency(window)) if e is not None]
        self._emit(made)
        return made

    def _window(self, now: float) -> _Window:
        cfg = self.config
        inside = (self._t > now - cfg.window_s) & (self._t <= now)
        status = self._status[inside]
        server = status >= 500
        return _Window(now, int(inside.sum()), int(server.sum()),
                       int(((status >= 400) & (status < 500)).sum()),
                       self._latency[inside][~server])

    def _judge_errors(self, w: _Window) -> Event | None:
        cfg = self.config
        if w.requests < cfg.min_requests:
            return None
        rate = w.server_errors / w.requests
        figures = {"requests": w.requests, "errors": w.server_errors, "rate": round(rate, 6),
                   "threshold": cfg.error_rate, "window_s": cfg.window_s}
        said = (f"5xx error rate {_pct(rate)} over the last {cfg.window_s:g} s "
                f"({w.server_errors} of {w.requests} requests)")
        if "error_rate" not in self._active and rate > cfg.error_rate:
            return self._raise("error_rate", w.now, f"{said}, above {_pct(cfg.error_rate)}",
                               figures)
        if "error_rate" in self._active and rate < cfg.error_rate * cfg.resolve_ratio:
            return self._resolve("error_rate", w.now, f"{said}: back to normal", figures)
        return None

    def _judge_clients(self, w: _Window) -> Event | None:
        cfg = self.config
        limit = cfg.client_error_rate
        if limit is None or w.requests < cfg.min_requests:
            return None
        rate = w.client_errors / w.requests
        figures = {"requests": w.requests, "errors": w.client_errors, "rate": round(rate, 6),
                   "threshold": limit, "window_s": cfg.window_s}
        said = (f"4xx client error rate {_pct(rate)} over the last {cfg.window_s:g} s "
                f"({w.client_errors} of {w.requests} requests)")
        if "client_error_rate" not in self._active and rate > limit:
            return self._raise("client_error_rate", w.now,
                               f"{said}, above {_pct(limit)}: clients send requests the model "
                               "refuses", figures)
        if "client_error_rate" in self._active and rate < limit * cfg.resolve_ratio:
            return self._resolve("client_error_rate", w.now, f"{said}: back to normal",
                                 figures)
        return None

    def _baseline(self, now: float) -> tuple[float | None, int]:
        """The median of the samples at least one window old, and how many there are."""
        old = [v for t, v in self._samples if t <= now - self.config.window_s]
        if len(old) < self.config.min_baseline_samples:
            return None, len(old)
        return float(np.median(old)), len(old)

    def _judge_latency(self, w: _Window) -> Event | None:
        cfg = self.config
        if len(w.latencies) < cfg.min_requests:
            return None
        q = cfg.latency_quantile
        current = float(np.quantile(w.latencies, q))
        active = "latency" in self._active
        if not active and w.now - self._last_sample >= cfg.sample_every_s:
            self._last_sample = w.now
            self._samples.append((w.now, current))
            horizon = w.now - cfg.baseline_horizon_s - cfg.window_s
            while self._samples and self._samples[0][0] < horizon:
                self._samples.popleft()
        baseline, count = (self._frozen_baseline, -1) if active else self._baseline(w.now)
        if baseline is None:
            return None
        name = f"p{q * 100:g}"
        ratio = current / baseline if baseline > 0 else math.inf
        figures = {"quantile": q, "latency_s": round(current, 6),
                   "baseline_s": round(baseline, 6),
                   "ratio": round(ratio, 3) if math.isfinite(ratio) else None,
                   "factor": cfg.latency_factor, "floor_s": cfg.latency_floor_s,
                   "requests": len(w.latencies), "window_s": cfg.window_s}
        times = f"{ratio:.1f}x" if math.isfinite(ratio) else "far above"
        said = (f"{name} latency {_ms(current)} over the last {cfg.window_s:g} s "
                f"({len(w.latencies)} requests), {times} the baseline {_ms(baseline)}")
        if not active:
            if current > cfg.latency_factor * baseline and current > cfg.latency_floor_s:
                figures["baseline_samples"] = count
                self._frozen_baseline = baseline
                # samples taken during the onset would drag the baseline up: drop them
                while self._samples and self._samples[-1][0] > w.now - cfg.window_s:
                    self._samples.pop()
                return self._raise("latency", w.now, said, figures)
            return None
        r = cfg.resolve_ratio
        if current < r * cfg.latency_factor * baseline or current < r * cfg.latency_floor_s:
            self._frozen_baseline = None
            self._last_sample = w.now  # the next sample waits a full interval
            return self._resolve("latency", w.now, f"{said}: back to normal", figures)
        return None

    # --- events -------------------------------------------------------------------------

    def _event(self, kind: str, state: str, now: float, message: str,
               figures: dict[str, Any]) -> Event:
        severity = _SEVERITY[kind] if state == "raised" else "info"
        return Event(source=SOURCE, kind=kind, severity=severity, state=state,
                     subject=self.subject, message=message,
                     details={**self.details, **figures}, created_at=now)

    def _raise(self, kind: str, now: float, message: str, figures: dict[str, Any]) -> Event:
        event = self._event(kind, "raised", now, message, figures)
        self._active[kind] = event
        return event

    def _resolve(self, kind: str, now: float, message: str, figures: dict[str, Any]) -> Event:
        raised = self._active.pop(kind)
        lasted = now - raised.created_at
        return self._event(kind, "resolved", now, f"{message} (after {_duration(lasted)})",
                           {**figures, "raised_at": raised.created_at,
                            "duration_s": round(lasted, 3)})

    def _emit(self, made: list[Event]) -> None:
        if not made:
            return
        with self._lock:
            self.recent.extend(made)
        for event in made:
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # a broken listener must not break scoring
                    log.exception("an anomaly event listener failed")

    # --- what the app shows -------------------------------------------------------------

    def is_active(self, kind: str) -> bool:
        """Whether an anomaly of ``kind`` is going on (the ``/metrics`` gauge)."""
        return kind in self._active

    def active(self) -> list[Event]:
        """The anomalies going on, each as the event that raised it."""
        with self._lock:
            return list(self._active.values())

    def recent_events(self) -> list[Event]:
        """The last events of this detector, newest first."""
        with self._lock:
            return list(reversed(self.recent))

    def baseline(self, now: float | None = None) -> float | None:
        """The latency baseline in seconds (None while learning)."""
        now = self.clock() if now is None else now
        with self._lock:
            if "latency" in self._active:
                return self._frozen_baseline
            return self._baseline(now)[0]

    def close(self, reason: str = "the scoring process stopped") -> list[Event]:
        """Resolve the anomalies still going on (nothing will judge them any more)."""
        now = self.clock()
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            made = [self._resolve(kind, now, f"no longer watched: {reason}", {"reason": reason})
                    for kind in list(self._active)]
        self._emit(made)
        return made


def log_event(event: Event) -> None:
    """A listener that logs ``event`` (where events go when there is no workspace)."""
    level = {"critical": logging.ERROR}.get(event.severity, logging.WARNING)
    what = "anomaly" if event.state == "raised" else "anomaly resolved"
    log.log(level, "%s %s (%s): %s", what, event.subject, event.kind, event.message)
