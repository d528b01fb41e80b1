"""The online scoring app: MLflow's scoring protocol and the Open Inference Protocol v2.

Every scoring request is measured (``/metrics``: latency histogram, requests and errors by
route and status) and handed to an :class:`~batchscore.serving.anomaly.AnomalyDetector`,
whose latency and error-rate anomalies become events: logged, kept in memory (``GET
/events``), shown as the gauge ``batchscore_serving_anomaly{kind}`` and, given an
:class:`~batchscore.state.events.EventWriter`, written to the workspace's state database.
A model that raises is answered with 500 (``INTERNAL_ERROR``) and counted as a 5xx; a
request that is the client's fault (malformed, too large, too deep, values the signature
refuses, a request id that cannot travel in a header) is answered 400 or 413 and never
counts toward the error rate. Bodies are limited while they stream in (chunked ones too),
and parsing and ``predict`` run in a worker thread, so that ``/ping`` answers during a large
request. A request's rows are logged only once it has been answered with its predictions.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool

from ..errors import InputError, UsageError
from ..jsonshape import JsonShapeError, check_json_shape
from ..state.events import EventWriter
from ..workspace import Workspace
from .anomaly import KINDS, AnomalyConfig, AnomalyDetector, log_event
from .datalog import InferenceLogger
from .inputs import InputProblem, Signature, parse_csv, parse_mlflow, parse_v2

__all__ = ["MAX_BODY_BYTES", "ServedModel", "create_app", "load_served_model", "model_detector",
           "output_type"]

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_ELEMENTS = 2_000_000  # a 100k-row request of 10 columns holds 1.1 million
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: it is echoed in a header
_SCORING_ROUTES = frozenset({"/invocations", "/v2/models/{name}/infer"})
log = logging.getLogger("batchscore.serving")
_V2_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
             "boolean": "BOOL", "string": "BYTES"}


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    signature: Signature
    predict: Callable[[pd.DataFrame], Any]
    output_type: str = "double"  # the signature's output type (an MLflow type name)


def load_served_model(ws: Workspace, ref: str) -> ServedModel:
    """A registry version (``NAME@ALIAS``, ``NAME/VERSION``) loaded through MLflow pyfunc."""
    import mlflow.pyfunc

    from ..registry.models import get_version, use_registry

    version = get_version(ws, ref)
    use_registry(ws)
    try:
        model = mlflow.pyfunc.load_model(version.uri)
    except Exception as exc:  # a flavour's loader raises anything on broken artifacts
        raise InputError(f"model {version.uri} ({version.source}) cannot be loaded: "
                         f"{type(exc).__name__}: {exc}") from None
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise UsageError(f"model {version.uri} has no input signature with column names; "
                         "log it with a signature to serve it")
    sig = [(spec.name, spec.type.name) for spec in schema.inputs]
    return ServedModel(version.name, str(version.version), sig, model.predict,
                       output_type(model))


_NUMPY_TYPES = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer",
                "bool": "boolean", "object": "string", "str": "string"}


def output_type(model: Any) -> str:
    """The MLflow type name of a pyfunc model's (single) output, from its signature; double
    when the signature says nothing."""
    schema = model.metadata.get_output_schema()
    if schema is None or len(schema.inputs) != 1:
        return "double"
    spec = schema.inputs[0]
    if schema.is_tensor_spec():
        return _NUMPY_TYPES.get(str(spec.type), "double")
    return str(getattr(spec.type, "name", "double"))


def _jsonable(predictions: Any) -> list[Any]:
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    return np.asarray(predictions).tolist()


def _flag(detector: AnomalyDetector, kind: str) -> float:
    return float(detector.is_active(kind))


def model_detector(model: ServedModel, config: AnomalyConfig | None = None,
                   **kwargs: Any) -> AnomalyDetector:
    """An anomaly detector for ``model``: subject ``NAME/VERSION``, details naming the model,
    the host and the process; thresholds from ``config`` or ``$BATCHSCORE_ANOMALY_*``."""
    return AnomalyDetector(f"{model.name}/{model.version}",
                           config if config is not None else AnomalyConfig.from_env(),
                           details={"model": model.name, "version": model.version,
                                    "host": socket.gethostname(), "pid": os.getpid()},
                           **kwargs)


def create_app(model: ServedModel, *, logger: InferenceLogger | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, detector: AnomalyDetector | None = None,
               events: EventWriter | None = None) -> FastAPI:
    """The scoring app of ``model``. ``logger`` logs requests and predictions to the data
    store; ``detector`` judges latency and errors (default: :func:`model_detector`); its
    events are logged and, with ``events``, written to the state database. The app's
    shutdown closes them: the detector resolves what is still on, the writer flushes."""
    app = FastAPI(title=f"batchscore model {model.name}", version=model.version)
    detector = detector if detector is not None else model_detector(model)
    detector.listeners.append(log_event)
    if events is not None:
        detector.listeners.append(events.put)
    app.state.detector = detector
    registry = CollectorRegistry()
    latency = Histogram("batchscore_serving_request_seconds", "Request latency.", ["route"],
                        registry=registry)
    requests = Counter("batchscore_serving_requests", "Requests by route and status.",
                       ["route", "status"], registry=registry)
    errors = Counter("batchscore_serving_errors", "Requests answered with an error.",
                     ["route", "status"], registry=registry)
    anomaly = Gauge("batchscore_serving_anomaly", "1 while an anomaly of this kind goes on.",
                    ["kind"], registry=registry)
    for kind in KINDS:
        anomaly.labels(kind).set_function(functools.partial(_flag, detector, kind))
    baseline = Gauge("batchscore_serving_latency_baseline_seconds",
                     "The latency baseline the detector compares with (NaN while learning).",
                     registry=registry)
    baseline.set_function(lambda: detector.baseline() or math.nan)

    @app.middleware("http")
    async def measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # a failure no handler caught: answer 500, count it
            log.exception("%s %s failed", request.method, request.url.path)
            response = fail(f"the server failed: {type(exc).__name__}: {exc}", 500,
                            request.headers.get("x-request-id") or "")
        elapsed = time.perf_counter() - started
        route = getattr(request.scope.get("route"), "path", "unmatched")
        latency.labels(route).observe(elapsed)
        requests.labels(route, str(response.status_code)).inc()
        if response.status_code >= 400:
            errors.labels(route, str(response.status_code)).inc()
        if route in _SCORING_ROUTES:
            detector.observe(elapsed, response.status_code)
        return response

    def fail(message: str, status: int, request_id: str) -> JSONResponse:
        code = {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 404: "NOT_FOUND"}.get(
            status, "INTERNAL_ERROR")
        return JSONResponse({"error_code": code, "message": message}, status_code=status,
                            headers={"X-Request-ID": request_id} if request_id else None)

    def model_failed(exc: Exception, request_id: str) -> JSONResponse:
        log.error("model %s/%s failed on request %s: %s: %s", model.name, model.version,
                  request_id, type(exc).__name__, exc, exc_info=exc)
        return fail(f"the model failed: {type(exc).__name__}: {exc}", 500, request_id)

    async def body_of(request: Request) -> bytes:
        """The body, counted as it streams in: over the limit (declared or not), 413."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise InputProblem(f"request body of {declared} bytes is over the limit of "
                               f"{max_body_bytes} bytes", 413)
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise InputProblem(f"request body is over the limit of {max_body_bytes} "
                                   "bytes", 413)
            parts.append(chunk)
        return b"".join(parts)

    def decode(raw: bytes) -> Any:
        if not raw.strip():
            raise InputProblem("request body is empty; send JSON such as "
                               '{"dataframe_split": {"columns": [...], "data": [[...]]}}')
        try:
            check_json_shape(raw, MAX_JSON_DEPTH, MAX_JSON_ELEMENTS)
            return json.loads(raw)
        except JsonShapeError as exc:
            raise InputProblem(str(exc)) from None
        except (ValueError, RecursionError) as exc:
            raise InputProblem(f"request body is not valid JSON: {exc}") from None

    def request_id_of(value: Any) -> str:
        if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
            raise InputProblem(f"request id {str(value)[:60]!r} is not 1-200 visible ASCII "
                               "characters")
        return value

    def answer(payload: dict[str, Any], frame: pd.DataFrame, data: list[Any],
               request_id: str) -> Response:
        """Render the answer, and only then log the request's rows with their predictions."""
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        if logger is not None:
            logger.log(frame, data, request_id=request_id, model=model.name,
                       version=model.version)
        return Response(body, media_type="application/json",
                        headers={"X-Request-ID": request_id})

    @app.get("/ping")
    @app.get("/health")
    def ping() -> PlainTextResponse:
        return PlainTextResponse("\n")

    @app.get("/version")
    def version() -> dict[str, str]:
        return {"model": model.name, "version": model.version}

    def answered(payload: dict[str, Any], frame: pd.DataFrame, data: list[Any],
                 request_id: str) -> Response:
        """:func:`answer`, or 500 when the answer cannot be made (the server's fault)."""
        try:
            return answer(payload, frame, data, request_id)
        except Exception as exc:
            log.exception("the answer to request %s cannot be sent", request_id)
            return fail(f"the server failed: {type(exc).__name__}: {exc}", 500, request_id)

    def header_id(request: Request) -> str:
        given = request.headers.get("x-request-id")
        return request_id_of(given) if given else uuid.uuid4().hex

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        request_id = ""
        try:
            request_id = header_id(request)
            raw = await body_of(request)
            if request.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
                frame = await run_in_threadpool(lambda: parse_csv(raw, model.signature))
            else:
                frame = await run_in_threadpool(
                    lambda: parse_mlflow(decode(raw), model.signature))
        except InputProblem as exc:
            return fail(str(exc), exc.status, request_id)

        def run() -> Response:
            try:
                data = _jsonable(model.predict(frame))
            except Exception as exc:
                return model_failed(exc, request_id)
            return answered({"predictions": data}, frame, data, request_id)

        return await run_in_threadpool(run)

    @app.get("/v2/health/ready")
    @app.get("/v2/health/live")
    def v2_health() -> dict[str, bool]:
        return {"ready": True, "live": True}

    @app.get("/v2")
    def v2_server() -> dict[str, Any]:
        return {"name": "batchscore", "version": model.version, "extensions": []}

    def metadata() -> dict[str, Any]:
        return {"name": model.name, "versions": [model.version], "platform": "mlflow",
                "inputs": [{"name": n, "datatype": _V2_TYPES.get(k, "BYTES"), "shape": [-1]}
                           for n, k in model.signature],
                "outputs": [{"name": "predict", "shape": [-1],
                             "datatype": _V2_TYPES.get(model.output_type, "FP64")}]}

    def unknown(name: str, request_id: str) -> JSONResponse | None:
        if name == model.name:
            return None
        return fail(f"no model named {name!r}; this server serves {model.name!r}", 404,
                    request_id)

    @app.get("/v2/models/{name}")
    def v2_metadata(name: str) -> Any:
        return unknown(name, "") or metadata()

    @app.get("/v2/models/{name}/ready")
    def v2_ready(name: str) -> Any:
        return unknown(name, "") or {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        request_id = ""
        try:
            request_id = header_id(request)
            missing = unknown(name, request_id)
            if missing is not None:
                return missing
            raw = await body_of(request)

            def parse() -> tuple[pd.DataFrame, Any]:
                body = decode(raw)
                frame = parse_v2(body, model.signature)
                given = body.get("id")
                return frame, (request_id_of(given) if given is not None else None)

            frame, given = await run_in_threadpool(parse)
            request_id = given or request_id
        except InputProblem as exc:
            return fail(str(exc), exc.status, request_id)

        def run() -> Response:
            try:
                data = _jsonable(model.predict(frame))
            except Exception as exc:
                return model_failed(exc, request_id)
            return answered({"model_name": model.name, "model_version": model.version,
                             "id": request_id,
                             "outputs": [{"name": "predict", "shape": [len(data)],
                                          "datatype": _V2_TYPES.get(model.output_type,
                                                                    "FP64"),
                                          "data": data}]},
                            frame, data, request_id)

        return await run_in_threadpool(run)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/events")
    def anomaly_events() -> dict[str, Any]:
        """The anomalies going on and the recent events of this process (newest first)."""
        return {"subject": detector.subject, "baseline_s": detector.baseline(),
                "active": [e.to_dict() for e in detector.active()],
                "recent": [e.to_dict() for e in detector.recent_events()]}

    if logger is not None:
        app.router.on_shutdown.append(logger.close)
    app.router.on_shutdown.append(detector.close)
    if events is not None:
        app.router.on_shutdown.append(events.close)
    return app
