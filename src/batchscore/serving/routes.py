"""The scoring app's routes, one router per protocol: the server's own health and version,
MLflow's scoring protocol (``POST /invocations``), the Open Inference Protocol v2 (``/v2``),
and monitoring (``/metrics``, ``/events``). Parsing and ``predict`` run in a worker thread,
so that ``/ping`` answers during a large request."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from .anomaly import AnomalyDetector
from .exchange import Exchange, decode, fail, header_id, request_id_of
from .inputs import InputProblem, parse_csv, parse_mlflow, parse_v2
from .served import ServedModel

__all__ = ["health_router", "mlflow_router", "monitoring_router",
           "v2_router"]

_V2_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
             "boolean": "BOOL", "string": "BYTES"}


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
    model = exchange.model

    @router.post("/invocations")
    async def invocations(request: Request) -> Response:
        request_id = ""
        try:
            request_id = header_id(request)
            raw = await exchange.body_of(request)
            if request.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
                frame = await run_in_threadpool(lambda: parse_csv(raw, model.signature))
            else:
                frame = await run_in_threadpool(
                    lambda: parse_mlflow(decode(raw), model.signature))
        except InputProblem as exc:
            return fail(str(exc), exc.status, request_id)
        return await run_in_threadpool(exchange.score, frame, request_id,
                                       lambda data: {"predictions": data})

    return router


def _v2_metadata(model: ServedModel) -> dict[str, Any]:
    return {"name": model.name, "versions": [model.version], "platform": "mlflow",
            "inputs": [{"name": n, "datatype": _V2_TYPES.get(k, "BYTES"), "shape": [-1]}
                       for n, k in model.signature],
            "outputs": [{"name": "predict", "shape": [-1],
                         "datatype": _V2_TYPES.get(model.output_type, "FP64")}]}


def _v2_unknown(model: ServedModel, name: str, request_id: str) -> JSONResponse | None:
    """404 when ``name`` is not the model served, else None."""
    if name == model.name:
        return None
    return fail(f"no model named {name!r}; this server serves {model.name!r}", 404, request_id)


def _v2_outputs(model: ServedModel, request_id: str, data: list[Any]) -> dict[str, Any]:
    return {"model_name": model.name, "model_version": model.version, "id": request_id,
            "outputs": [{"name": "predict", "shape": [len(data)],
                         "datatype": _V2_TYPES.get(model.output_type, "FP64"),
                         "data": data}]}


def _v2_parse(model: ServedModel, raw: bytes) -> tuple[pd.DataFrame, str | None]:
    """The v2 request's frame and its own ``id`` (checked), if it gives one."""
    body = decode(raw)
    frame = parse_v2(body, model.signature)
    given = body.get("id")
    return frame, (request_id_of(given) if given is not None else None)


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
        return _v2_unknown(model, name, "") or _v2_metadata(model)

    @router.get("/v2/models/{name}/ready")
    def v2_ready(name: str) -> Any:
        return _v2_unknown(model, name, "") or {"name": name, "ready": True}

    @router.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        request_id = ""
        try:
            request_id = header_id(request)
            missing = _v2_unknown(model, name, request_id)
            if missing is not None:
                return missing
            raw = await exchange.body_of(request)
            frame, given = await run_in_threadpool(_v2_parse, model, raw)
            request_id = given or request_id
        except InputProblem as exc:
            return fail(str(exc), exc.status, request_id)
        return await run_in_threadpool(exchange.score, frame, request_id,
                                       lambda data: _v2_outputs(model, request_id, data))

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
