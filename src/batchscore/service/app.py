"""The control plane's FastAPI application: one process serves the REST API under ``/api/v1``,
``/healthz``, ``/metrics`` and the dashboard, and runs the run slots and the trigger loop."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from ..endpoints import EndpointExistsError, EndpointNotFoundError
from ..errors import JobNotFoundError, JobStateError, OutputExistsError, UsageError
from ..pipelines import PipelineNotFoundError, RunNotFoundError
from ..streaming.pool import ConsumerPool
from ..triggers import TriggerLoop, TriggerNotFoundError
from ..workspace import Workspace
from .auth import Principal, verify_token
from .links import LinkError
from .metrics import CONTENT_TYPE, render_metrics
from .slots import RunSlots
from .submit import MAX_SUBMIT_BODY_BYTES

__all__ = ["ServiceConfig", "create_app"]

log = logging.getLogger("batchscore.service")
DASHBOARD = Path(__file__).with_name("dashboard")
MiB = 1024 * 1024


@dataclass
class ServiceConfig:
    """How one service process behaves; every field has an embedded default."""

    auth: str = "auto"  # auto: loopback needs no token; always; off
    run_slots: int = 2  # runs executed at once by this process
    scan_interval: float = 5.0  # seconds between trigger scans
    background: bool = True  # start the run slots and the trigger loop with the app
    max_body_bytes: int = 1 * MiB  # JSON requests
    max_upload_bytes: int = 4096 * MiB  # uploads to the data store
    runs_per_minute: float = 30.0  # per token (or per client without one)
    runs_burst: int = 10
    link_ttl: float = 3600.0  # seconds a download link lives

    def __post_init__(self) -> None:
        if self.auth not in ("auto", "always", "off"):
            raise UsageError(f"auth must be auto, always or off, got {self.auth!r}")


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


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def principal_of(request: Request) -> Principal | None:
    """Who makes ``request``: a token's principal, the local admin, or None (unknown)."""
    service: Service = request.app.state.service
    header = request.headers.get("authorization", "")
    if service.config.auth == "off":
        return Principal("anonymous", "admin")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return verify_token(service.ws.engine, token.strip())
    client = request.client.host if request.client else None
    if service.config.auth == "auto" and _is_loopback(client):
        return Principal("local", "admin")
    return None


class _BodyLimit:
    """Refuse request bodies over the limit with 413, before they reach a handler."""

    def __init__(self, app: Any, config: ServiceConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                      send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"].startswith("/api/v1/data/")
        submit = scope["path"] == "/api/v1/jobs" and scope.get("method") == "POST"
        limit = (self.config.max_upload_bytes if upload else
                 MAX_SUBMIT_BODY_BYTES if submit else self.config.max_body_bytes)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _send_413(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def watch(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except _TooLarge:
            if not started:
                await _send_413(send, limit)


class _TooLarge(Exception):
    pass


async def _send_413(send: Callable[[Any], Awaitable[None]], limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than the limit of {limit} bytes"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})


_STATUS: list[tuple[type[Exception], int]] = [
    (LinkError, 403),
    (RunNotFoundError, 404), (JobNotFoundError, 404), (PipelineNotFoundError, 404),
    (TriggerNotFoundError, 404), (EndpointNotFoundError, 404),
    (OutputExistsError, 409), (JobStateError, 409), (EndpointExistsError, 409),
    (UsageError, 400),
]


def create_app(ws: Workspace, config: ServiceConfig | None = None) -> FastAPI:
    """The service for workspace ``ws``."""
    from . import api, deployments_api, endpoints_api, events_api, outputs_api, streams_api

    config = config or ServiceConfig()
    service = Service(ws, config, RunSlots(ws, config.run_slots),
                      TriggerLoop(ws, config.scan_interval),
                      RateLimiter(config.runs_per_minute, config.runs_burst))
    streams = ConsumerPool(ws, config.scan_interval)  # one consumer thread per stream

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")
    app.add_middleware(_BodyLimit, config=config)
    return app
