"""Pipeline runs: list, show, cancel, and a signed link to a run's output."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from ...apimodels import DownloadLink, RunDetail, RunView, RunWithJob
from ...pipelines import cancel_run, get_run, list_runs, resolve_data_path
from ...triggers import get_trigger
from ..context import service_of, ws_of
from ..deps import Operator, Viewer
from ..links import sign_link
from ..views import run_links, run_view, with_job

__all__ = ["router"]

router = APIRouter()


@router.get("/runs", tags=["runs"], response_model=list[RunWithJob])
def runs(request: Request, who: Viewer, state: str | None = None, trigger: str | None = None,
         limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Pipeline runs, newest first, each with its job's progress."""
    ws = ws_of(request)
    trigger_id = get_trigger(ws.engine, trigger).id if trigger else None
    return [with_job(ws, run_view(ws, r)) for r in
            list_runs(ws.engine, state=state, trigger_id=trigger_id, limit=limit)]


@router.get("/runs/{run_id}", tags=["runs"], response_model=RunDetail)
def run(request: Request, who: Viewer, run_id: str) -> dict[str, Any]:
    ws = ws_of(request)
    return {**with_job(ws, run_view(ws, get_run(ws.engine, run_id))),
            "links": run_links(run_id)}


@router.post("/runs/{run_id}/cancel", tags=["runs"], response_model=RunView)
def cancel(request: Request, who: Operator, run_id: str) -> dict[str, Any]:
    ws = ws_of(request)
    return run_view(ws, cancel_run(ws, run_id))


@router.get("/runs/{run_id}/output", tags=["runs"], response_model=DownloadLink)
def run_output(request: Request, who: Viewer, run_id: str) -> dict[str, Any]:
    """A signed link to download the run's output, valid for a while."""
    service = service_of(request)
    found = get_run(service.ws.engine, run_id)
    if found.state != "succeeded" or not found.output_url:
        raise HTTPException(409, f"run {run_id} is {found.state}; it has no output yet")
    path = resolve_data_path(service.ws, found.output_url, "output")
    url, expires = sign_link(service.ws, path, service.config.link_ttl)
    return {"url": url, "expires": expires, "path": path}
