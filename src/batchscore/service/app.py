"""The control plane's FastAPI application: one process serves the REST API under ``/api/v1``,
``/healthz``, ``/metrics`` and the dashboard, and runs the run slots and the trigger loop."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from .. import telemetry
from ..connections import ConnectionExistsError, ConnectionNotFoundError
from ..endpoints import EndpointExistsError, EndpointNotFoundError
from ..errors import JobNotFoundError, JobStateError, OutputExistsError, UsageError
from ..pipelines import PipelineNotFoundError, RunNotFoundError
from ..streaming.pool import ConsumerPool
from ..triggers import TriggerLoop, TriggerNotFoundError
from ..workspace import Workspace
from .auth import Principal, write_admin_token
from .guard import Guard
from .links import LinkError
from .metrics import CONTENT_TYPE, render_metrics
from .slots import RunSlots

__all__ = ["ServiceConfig", "create_app", "principal_of"]

log = logging.getLogger("batchscore.service")
DASHBOARD = Path(__file__).with_name("dashboard")
MiB = 1024 * 1024


@dataclass
class ServiceConfig:
    """How one service process behaves; every field has an embedded default."""

    auth: str = "auto"  # auto: every caller needs a token, the local admin's is in a file;
    # always: the same, without the file; off: no tokens (refused on a public address unless
    # the caller says it means it: see batchscore serve)
    run_slots: int = 2  # runs executed at once by this process
    scan_interval: float = 5.0  # seconds between trigger scans
    background: bool = True  # start the run slots and the trigger loop with the app
    max_body_bytes: int = 1 * MiB  # JSON requests
    max_upload_bytes: int = 4096 * MiB  # uploads to the data store
    runs_per_minute: float = 30.0  # per token (or per client without one)
    runs_burst: int = 10
    link_ttl: float = 3600.0  # seconds a download link lives
    link_max_ttl: float = 7 * 86400.0  # no link is honoured for longer after it was made
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides localhost and loopback
    max_json_depth: int = 32  # nesting of a JSON body
    max_json_elements: int = 100_000  # values in the arrays and objects of a JSON body

    def __post_init__(self) -> None:
        if self.auth not in ("auto", "always", "off"):
            raise UsageError(f"auth must be auto, always or off, got {self.auth!r}")
        if not 0 < self.link_ttl <= self.link_max_ttl:
            raise UsageError(f"link_ttl must be above 0 and at most link_max_ttl "
                             f"({self.link_max_ttl:g} s), got {self.link_ttl:g}")
        self.allowed_hosts = tuple(self.allowed_hosts)


class RateLimiter:
    """A token bucket per key: ``rate`` per minute, up to ``burst`` at once."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            level, stamp = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - stamp) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate if self.rate > 0 else 3600.0


@dataclass
class Service:
    ws: Workspace
    config: ServiceConfig
    slots: RunSlots
    triggers: TriggerLoop
    limiter: RateLimiter
    started_at: float = field(default_factory=time.time)


def principal_of(request: Request) -> Principal | None:
    """Who makes ``request``: the principal of its token (checked by the guard before the
    body was read), or None (no valid token). There is no ambient authority: a request from
    the loopback interface needs a token as any other (the local admin's is in
    the workspace's ``service/admin.token``)."""
    state = request.scope.get("state") or {}
    if "principal" in state:
        return state["principal"]
    return None


_STATUS: list[tuple[type[Exception], int]] = [
    (LinkError, 403),
    (RunNotFoundError, 404), (JobNotFoundError, 404), (PipelineNotFoundError, 404),
    (TriggerNotFoundError, 404), (EndpointNotFoundError, 404),
    (OutputExistsError, 409), (JobStateError, 409), (EndpointExistsError, 409),
    (ConnectionNotFoundError, 404), (ConnectionExistsError, 409),
    (UsageError, 400),
]


def create_app(ws: Workspace, config: ServiceConfig | None = None) -> FastAPI:
    """The service for workspace ``ws``."""
    from . import (
        api,
        cluster_api,
        connections_api,
        deployments_api,
        endpoints_api,
        events_api,
        outputs_api,
        streams_api,
        video_report_api,
    )

    config = config or ServiceConfig()
    service = Service(ws, config, RunSlots(ws, config.run_slots),
                      TriggerLoop(ws, config.scan_interval),
                      RateLimiter(config.runs_per_minute, config.runs_burst))
    streams = ConsumerPool(ws, config.scan_interval)  # one consumer thread per stream

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if config.auth == "auto":
            write_admin_token(ws)
        if telemetry.setup("batchscore-service", ws.settings.otlp_endpoint):  # issue 19
            telemetry.observe_metrics(lambda: render_metrics(ws, lambda: service.slots.busy))
        if config.background:
            service.slots.start()
            service.triggers.start()
            streams.start()
        try:
            yield
        finally:
            service.slots.stop()
            service.triggers.stop()
            streams.stop()

    app = FastAPI(
        title="batchscore", version="1", lifespan=lifespan,
        openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
        description="The batchscore control plane: jobs, pipelines and their runs, triggers.",
    )
    app.state.service = service
    app.state.streams = streams

    async def usage_error(_request: Request, exc: Exception) -> Response:
        status = next(code for kind, code in _STATUS if isinstance(exc, kind))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    app.add_exception_handler(UsageError, usage_error)
    app.add_exception_handler(JobStateError, usage_error)

    async def invalid(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        reason = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse({"detail": reason or "invalid request",
                             "errors": json.loads(json.dumps(errors, default=str))},
                            status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The document says what ``invalid`` answers: a ``detail`` sentence and the list of
        ``errors`` (FastAPI's default declares ``detail`` as that list)."""
        if app.openapi_schema is None:
            schema = plain_openapi()
            found = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in found:
                found["HTTPValidationError"] = {
                    "title": "HTTPValidationError", "type": "object", "required": ["detail"],
                    "properties": {"detail": {"type": "string", "title": "Detail"},
                                   "errors": {"type": "array", "items": {"type": "object"},
                                              "title": "Errors"}}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Alive, and the state database answers."""
        with ws.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "uptime_s": round(time.time() - service.started_at, 1),
                "run_slots": config.run_slots, "runs_active": service.slots.busy}

    @app.get("/metrics", tags=["service"])
    def metrics(request: Request) -> Response:
        """Prometheus metrics: jobs by state, mini-batches, items/s, queue depth, workers."""
        api.require(request, "viewer")
        return Response(render_metrics(ws, lambda: service.slots.busy),
                        media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/dashboard/")

    app.include_router(api.router, prefix="/api/v1")
    app.include_router(endpoints_api.router, prefix="/api/v1")
    app.include_router(deployments_api.router, prefix="/api/v1")
    app.include_router(outputs_api.router, prefix="/api/v1")
    app.include_router(streams_api.router, prefix="/api/v1")
    app.include_router(events_api.router, prefix="/api/v1")
    app.include_router(connections_api.router, prefix="/api/v1")
    app.include_router(video_report_api.router, prefix="/api/v1")
    app.include_router(cluster_api.router, prefix="/api/v1")
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")
    app.add_middleware(Guard, service=service)
    return app
