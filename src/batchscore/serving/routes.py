"""The scoring app's routes, one router per protocol: the server's own health and version,
MLflow's scoring protocol (``POST /invocations``), the Open Inference Protocol v2 (``/v2``),
and monitoring (``/metrics``, ``/events``). Parsing and ``predict`` run in a worker thread,
so that ``/ping`` answers during a large request.

The two scoring routes are declared here (the OpenAPI document, 405 for other methods) and
run :class:`~batchscore.serving.exchange.Exchange`; in the app,
:class:`~batchscore.serving.asgi.ScoringMiddleware` runs the same exchange for them before
FastAPI's routing, so that a scoring request pays for no framework layer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .anomaly import AnomalyDetector
from .exchange import V2_TYPES, Exchange
from .served import ServedModel

__all__ = ["health_router", "mlflow_router", "monitoring_router",
           "v2_router"]

def health_router(model: ServedModel) -> APIRouter:
    """``/ping`` and ``/health`` (MLflow's), and ``/version``: the model served."""
    router = APIRouter()

    @router.get("/ping")
    @router.get("/health")
    def ping() -> PlainTextResponse:
        return PlainTextResponse("\n")

    @router.get("/version")
    def version() -> dict[str, str]:
        return {"model": model.name, "version": model.version}

    return router


def mlflow_router(exchange: Exchange) -> APIRouter:
    """MLflow's scoring protocol: ``POST /invocations`` with ``dataframe_split``,
    ``dataframe_records``, ``instances`` or ``inputs`` (JSON), or CSV."""
    router = APIRouter()

    @router.post("/invocations")
    async def invocations(request: Request) -> Response:
        return (await exchange.invocations(request.headers, request.receive)).response()

    return router


def _v2_metadata(model: ServedModel) -> dict[str, Any]:
    return {"name": model.name, "versions": [model.version], "platform": "mlflow",
            "inputs": [{"name": n, "datatype": V2_TYPES.get(k, "BYTES"), "shape": [-1]}
                       for n, k in model.signature],
            "outputs": [{"name": "predict", "shape": [-1],
                         "datatype": V2_TYPES.get(model.output_type, "FP64")}]}


def v2_router(exchange: Exchange) -> APIRouter:
    """The Open Inference Protocol v2: server health and metadata, the model's metadata and
    readiness, and ``POST /v2/models/{name}/infer``."""
    router = APIRouter()
    model = exchange.model

    @router.get("/v2/health/ready")
    @router.get("/v2/health/live")
    def v2_health() -> dict[str, bool]:
        return {"ready": True, "live": True}

    @router.get("/v2")
    def v2_server() -> dict[str, Any]:
        return {"name": "batchscore", "version": model.version, "extensions": []}

    @router.get("/v2/models/{name}")
    def v2_metadata(name: str) -> Any:
        missing = exchange.unknown(name, "")
        return missing.response() if missing is not None else _v2_metadata(model)

    @router.get("/v2/models/{name}/ready")
    def v2_ready(name: str) -> Any:
        missing = exchange.unknown(name, "")
        return missing.response() if missing is not None else {"name": name, "ready": True}

    @router.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        return (await exchange.infer(name, request.headers, request.receive)).response()

    return router


def monitoring_router(registry: CollectorRegistry, detector: AnomalyDetector) -> APIRouter:
    """``/metrics`` (Prometheus) and ``/events``: the anomalies of this process."""
    router = APIRouter()

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/events")
    def anomaly_events() -> dict[str, Any]:
        """The anomalies going on and the recent events of this process (newest first)."""
        return {"subject": detector.subject, "baseline_s": detector.baseline(),
                "active": [e.to_dict() for e in detector.active()],
                "recent": [e.to_dict() for e in detector.recent_events()]}

    return router
