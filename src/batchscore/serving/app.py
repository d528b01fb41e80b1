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
The scoring routes are served by a plain ASGI middleware before FastAPI's routing
(:mod:`batchscore.serving.asgi`): the same answers, without the framework's per-request cost.
"""

from __future__ import annotations

import gc
import os
import socket
from typing import Any

from fastapi import FastAPI

from ..errors import InputError, UsageError
from ..registry.models import get_version, load_pyfunc
from ..state.events import EventWriter
from ..workspace import Workspace
from .anomaly import AnomalyConfig, AnomalyDetector, log_event
from .asgi import ScoringApp
from .datalog import LOG_COLUMNS, InferenceLogger, clashing_columns
from .exchange import Exchange
from .metrics import ServingMetrics
from .predict import served_predict
from .routes import health_router, mlflow_router, monitoring_router, v2_router
from .served import ServedModel

__all__ = ["MAX_BODY_BYTES", "ServedModel", "create_app", "freeze_startup_heap",
           "load_served_model", "model_detector", "output_type"]

MAX_BODY_BYTES = 5 * 1024 * 1024


def freeze_startup_heap() -> None:
    """Call once in a serving process, with the model loaded and the app made, before it
    serves: what exists then (the libraries, the model) lives as long as the process, so it
    is moved out of the garbage collector's reach (``gc.freeze``). The collector's full
    passes, which a large request's allocations set off, then look at what requests made,
    not at the hundreds of thousands of objects of MLflow, pandas and scikit-learn (about 50
    ms each here, in the middle of a request). Not for a process that makes apps again and
    again (a test run): what it freezes is never collected."""
    gc.collect()
    gc.freeze()


def load_served_model(ws: Workspace, ref: str) -> ServedModel:
    """A registry version (``NAME@ALIAS``, ``NAME/VERSION``) loaded through MLflow pyfunc."""
    version = get_version(ws, ref)
    try:
        model = load_pyfunc(ws, version)
    except Exception as exc:  # a flavour's loader raises anything on broken artifacts
        raise InputError(f"model {version.uri} ({version.source}) cannot be loaded: "
                         f"{type(exc).__name__}: {exc}") from None
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise UsageError(f"model {version.uri} has no input signature with column names; "
                         "log it with a signature to serve it")
    sig = [(spec.name, spec.type.name) for spec in schema.inputs]
    return ServedModel(version.name, str(version.version), sig, served_predict(model, sig),
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
    shutdown closes them: the detector resolves what is still on, the writer flushes. A
    model whose inputs hold a column the request log keeps for its own (``model``,
    ``prediction``, ...) is refused with ``logger`` (UsageError), before any request."""
    if logger is not None and (clash := clashing_columns([n for n, _ in model.signature])):
        logger.close()
        raise UsageError(
            f"model {model.name}/{model.version} has input column(s) {', '.join(clash)}, "
            f"which the request log keeps for its own ({', '.join(LOG_COLUMNS)}): serve it "
            "without request logging (--no-log), or rename the column(s)")
    app = ScoringApp(title=f"batchscore model {model.name}", version=model.version)
    detector = detector if detector is not None else model_detector(model)
    detector.listeners.append(log_event)
    if events is not None:
        detector.listeners.append(events.put)
    app.state.detector = detector
    metrics = ServingMetrics(detector)
    exchange = Exchange(model, logger, max_body_bytes)
    app.serve_scoring(exchange, metrics)
    for router in (health_router(model), mlflow_router(exchange), v2_router(exchange),
                   monitoring_router(metrics.registry, detector)):
        app.include_router(router)
    app.router.on_shutdown.append(exchange.close)
    if logger is not None:
        app.router.on_shutdown.append(logger.close)
    app.router.on_shutdown.append(detector.close)
    if events is not None:
        app.router.on_shutdown.append(events.close)
    return app
