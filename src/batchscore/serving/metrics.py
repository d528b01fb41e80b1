"""The scoring app's measures: every request's latency, and its count by route and status (an
error's too), in a Prometheus registry of its own; the scoring routes' latencies and statuses
go to the anomaly detector, whose anomalies and baseline are gauges of the same registry.
:class:`~batchscore.serving.asgi.ScoringMiddleware` feeds them."""

from __future__ import annotations

import functools
import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .anomaly import KINDS, AnomalyDetector

__all__ = ["SCORING_ROUTES", "ServingMetrics"]

# the routes whose latency and errors the anomaly detector judges
SCORING_ROUTES = frozenset({"/invocations", "/v2/models/{name}/infer"})


def _flag(detector: AnomalyDetector, kind: str) -> float:
    return float(detector.is_active(kind))


class ServingMetrics:
    """The instruments of one app; :meth:`record` counts one request."""

    def __init__(self, detector: AnomalyDetector) -> None:
        self.detector = detector
        self.registry = registry = CollectorRegistry()
        self.latency = Histogram("batchscore_serving_request_seconds", "Request latency.",
                                 ["route"], registry=registry)
        self.requests = Counter("batchscore_serving_requests", "Requests by route and status.",
                                ["route", "status"], registry=registry)
        self.errors = Counter("batchscore_serving_errors", "Requests answered with an error.",
                              ["route", "status"], registry=registry)
        anomaly = Gauge("batchscore_serving_anomaly", "1 while an anomaly of this kind goes on.",
                        ["kind"], registry=registry)
        for kind in KINDS:
            anomaly.labels(kind).set_function(functools.partial(_flag, detector, kind))
        baseline = Gauge("batchscore_serving_latency_baseline_seconds",
                         "The latency baseline the detector compares with (NaN while "
                         "learning).", registry=registry)
        baseline.set_function(lambda: detector.baseline() or math.nan)
        self._children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}

    def record(self, route: str, status: int, elapsed: float) -> None:
        """Count one request answered on ``route`` (its path) with ``status`` after
        ``elapsed`` seconds; a scoring route's goes to the anomaly detector too."""
        counters = self._children.get((route, status))
        if counters is None:  # the labelled children, looked up once per route and status
            counters = self._children[(route, status)] = (
                self.latency.labels(route), self.requests.labels(route, str(status)),
                self.errors.labels(route, str(status)) if status >= 400 else None)
        latency, requests, errors = counters
        latency.observe(elapsed)
        requests.inc()
        if errors is not None:
            errors.inc()
        if route in SCORING_ROUTES:
            self.detector.observe(elapsed, status)
