"""Triggers: list (with their health and the runs they started), create, show (with the
ledger of the blobs seen), delete. Admins manage them; viewers read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...apimodels import TriggerDetail, TriggerRecord, TriggerView
from ...pipelines import list_runs
from ...redact import public_value
from ...triggers import create_trigger, get_trigger, ledger, list_triggers, remove_trigger
from ..context import service_of, ws_of
from ..deps import Admin, Viewer
from ..submit import store_locations

__all__ = ["TriggerIn", "router"]

router = APIRouter()


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    pipeline: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    prefix: str | None = Field(None, max_length=1024, description="Storage: folder to watch.")
    pattern: str = Field("*", max_length=200)
    output: str | None = Field(None, max_length=1024)
    marker: str | None = Field(None, max_length=200,
                               description="Wait for a marker file (such as 'trigger*').")
    settle_seconds: float = Field(2.0, ge=0, le=3600)
    cron: str | None = Field(None, max_length=100, description="Schedule: cron expression.")
    process_existing: bool = False


def _trigger_view(request: Request, trigger: Any) -> dict[str, Any]:
    service = service_of(request)
    health = service.triggers.health.get(trigger.id)
    started = list_runs(service.ws.engine, trigger_id=trigger.id, limit=20)
    return {**trigger.to_dict(),
            "last_error": health.last_error if health else None,
            "last_scan": health.last_scan if health else None,
            "runs": [{"id": r.id, "state": r.state,
                      "input": public_value(r.params.get("input"), store_locations(service.ws)),
                      "created_at": r.created_at} for r in started]}


@router.get("/triggers", tags=["triggers"], response_model=list[TriggerView])
def triggers(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """Triggers, with their health and the runs they started."""
    return [_trigger_view(request, t) for t in list_triggers(ws_of(request).engine)]


@router.post("/triggers", status_code=201, tags=["triggers"], response_model=TriggerView)
def add_trigger(request: Request, who: Admin, body: TriggerIn) -> dict[str, Any]:
    service = service_of(request)
    trigger = create_trigger(service.ws, **body.model_dump())
    service.triggers.wake.set()
    return _trigger_view(request, trigger)


@router.get("/triggers/{name}", tags=["triggers"], response_model=TriggerDetail)
def trigger(request: Request, who: Viewer, name: str) -> dict[str, Any]:
    engine = ws_of(request).engine
    found = get_trigger(engine, name)
    return {**_trigger_view(request, found), "ledger": ledger(engine, found.id)}


@router.delete("/triggers/{name}", tags=["triggers"], response_model=TriggerRecord)
def delete_trigger(request: Request, who: Admin, name: str) -> dict[str, Any]:
    return remove_trigger(ws_of(request), name).to_dict()
