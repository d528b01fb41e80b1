"""The service's own routes, outside ``/api/v1``: ``/healthz`` (public), ``/metrics``
(Prometheus, viewers) and ``/`` (to the dashboard)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import text

from ...apimodels import Health
from ..context import service_of
from ..deps import Viewer
from ..metrics import CONTENT_TYPE, render_metrics

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", tags=["service"], response_model=Health)
def healthz(request: Request) -> dict[str, Any]:
    """Alive, and the state database answers."""
    service = service_of(request)
    with service.ws.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "uptime_s": round(time.time() - service.started_at, 1),
            "run_slots": service.config.run_slots, "runs_active": service.slots.busy}


@router.get("/metrics", tags=["service"])
def metrics(request: Request, who: Viewer) -> Response:
    """Prometheus metrics: jobs by state, mini-batches, items/s, queue depth, workers."""
    service = service_of(request)
    return Response(render_metrics(service.ws, lambda: service.slots.busy),
                    media_type=CONTENT_TYPE)


@router.get("/", include_in_schema=False)
def root() -> Response:
    return RedirectResponse("/dashboard/")
