"""The control plane's FastAPI application: one process serves the REST API under ``/api/v1``,
``/healthz``, ``/metrics`` and the dashboard, and runs the run slots, the trigger loop and the
stream consumers. This module only assembles: the service object is :mod:`.context`'s, who
may do what :mod:`.deps`', the operations :mod:`.routers`', the error answers
:mod:`.handlers`'."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .. import telemetry
from ..workspace import Workspace
from . import handlers
from .auth import write_admin_token
from .context import Service, ServiceConfig
from .deps import DoorRules
from .guard import Guard
from .metrics import render_metrics
from .routers import API, health

__all__ = ["ServiceConfig", "create_app"]

DASHBOARD = Path(__file__).with_name("dashboard")


def create_app(ws: Workspace, config: ServiceConfig | None = None) -> FastAPI:
    """The service for workspace ``ws``."""
    config = config or ServiceConfig()
    service = Service.open(ws, config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if config.auth == "auto":
            write_admin_token(ws)
        if telemetry.setup("batchscore-service", ws.settings.otlp_endpoint):  # issue 19
            telemetry.observe_metrics(lambda: render_metrics(ws, lambda: service.slots.busy))
        if config.background:
            service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="batchscore", version="1", lifespan=lifespan,
        openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
        description="The batchscore control plane: jobs, pipelines and their runs, triggers.",
    )
    app.state.service = service
    handlers.install(app)
    app.include_router(health.router)
    for router in API:
        app.include_router(router, prefix="/api/v1")
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")
    app.add_middleware(Guard, service=service, rules=DoorRules(API, prefix="/api/v1"))
    return app
