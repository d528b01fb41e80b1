"""The scoring app's measures: every request's latency, and its count by route and status (an
error's too), in a Prometheus registry of its own; the scoring routes' latencies and statuses
go to the anomaly detector, whose anomalies and baseline are gauges of the same registry."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .anomaly import KINDS, AnomalyDetector
from .exchange import fail

__all__ = ["SCORING_ROUTES", "ServingMetrics"]

# the routes whose latency and errors the anomaly detector judges
SCORING_ROUTES = frozenset({"/invocations", "/v2/models/{name}/infer"})
log = logging.getLogger("batchscore.serving")


def _flag(detector: AnomalyDetector, kind: str) -> float:
    return float(detector.is_active(kind))


class ServingMetrics:
    """The instruments of one app, and the middleware that feeds them (:meth:`measure`)."""

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

    async def measure(self, request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The app's HTTP middleware: answer a failure no handler caught with 500, and count
        every request by its route's path and its status."""
        timer = self.detector.timer
        started = timer()
        try:
            response = await call_next(request)
        except Exception as exc:  # a failure no handler caught: answer 500, count it
            log.exception("%s %s failed", request.method, request.url.path)
            response = fail(f"the server failed: {type(exc).__name__}: {exc}", 500,
                            request.headers.get("x-request-id") or "")
        elapsed = timer() - started
        route = getattr(request.scope.get("route"), "path", "unmatched")
        self.latency.labels(route).observe(elapsed)
        self.requests.labels(route, str(response.status_code)).inc()
        if response.status_code >= 400:
            self.errors.labels(route, str(response.status_code)).inc()
        if route in SCORING_ROUTES:
            self.detector.observe(elapsed, response.status_code)
        return response
