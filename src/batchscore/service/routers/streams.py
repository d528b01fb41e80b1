"""Streams: create, list, show, delete, and send events.

``POST /api/v1/streams/{name}/events`` takes ``{"events": [...]}``: every event is validated,
and a batch with any bad event is refused whole (422, each bad event named by index, field and
problem; nothing written). A good batch is appended to the stream's Redis stream in one
transaction and answered with 202, the count and the entry ids; the stream's consumer lands it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...apimodels import (
    EventsAccepted,
    StreamRecord,
    StreamStatus,
    StreamView,
)
from ...streaming import (
    EventBatchError,
    create_stream,
    delete_stream,
    get_stream,
    list_streams,
    send_events,
)
from ...streaming.ingest import MAX_BATCH
from ...streaming.status import stream_status
from ...streaming.streams import DEFAULT_AGGREGATES
from ..context import consumer_status, service_of, ws_of
from ..deps import Admin, Operator, Viewer

__all__ = ["EventsIn", "StreamIn", "router"]

router = APIRouter()


class StreamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    window: str | float = Field("60s", description="Window length: 60s, 5min, 1h.")
    lateness: str | float = Field("30s", description="Allowed lateness.")
    aggregates: list[str] = Field(list(DEFAULT_AGGREGATES), max_length=16)
    max_future: str | float = Field("1h", description="Refuse events further in the future.")
    redis_url: str | None = Field(None, max_length=1024,
                                  description="Default: the service's $BATCHSCORE_REDIS_URL.")
    redis_key: str | None = Field(None, max_length=300)
    partition: str = Field("hour", description="hour or day.")
    endpoint: str | None = Field(None, max_length=100)
    endpoint_output: str | None = Field(None, max_length=1024)


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(max_length=MAX_BATCH, description=(
        "Objects with device, sensor, timestamp (ISO 8601 or UNIX seconds) and value."))


@router.get("/streams", tags=["streams"], response_model=list[StreamView])
def streams(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """Streams with their counters and this service's consumer of each."""
    return [{**s.to_dict(), "consumer": consumer_status(request, s.name)}
            for s in list_streams(ws_of(request))]


@router.post("/streams", status_code=201, tags=["streams"], response_model=StreamRecord)
def add_stream(request: Request, who: Admin, body: StreamIn) -> dict[str, Any]:
    """Create a stream (admin); the service starts its consumer."""
    made = create_stream(ws_of(request), created_by=who.name, **body.model_dump())
    service_of(request).streams.wake.set()
    return dict(made.to_dict())


@router.get("/streams/{name}", tags=["streams"], response_model=StreamStatus,
            response_model_exclude_unset=True)
def stream(request: Request, who: Viewer, name: str) -> dict[str, Any]:
    """Settings, counters (events received, in windows, late, rejected; windows landed;
    partitions closed), watermark, Redis length and pending entries, closed partitions."""
    status = stream_status(ws_of(request), name)
    return {**status, "consumer": consumer_status(request, name)}


@router.delete("/streams/{name}", tags=["streams"], response_model=StreamRecord)
def remove_stream(request: Request, who: Admin, name: str,
                  purge: bool = Query(False, description="Also remove landed data and the "
                                      "Redis stream.")) -> dict[str, Any]:
    """Delete a stream (admin): its definition, ledger and consumer group."""
    return dict(delete_stream(ws_of(request), name, purge=purge).to_dict())


@router.post("/streams/{name}/events", status_code=202, tags=["streams"],
             response_model=EventsAccepted)
def post_events(request: Request, who: Operator, name: str, body: EventsIn) -> Any:
    """Append a batch of events (operator); refused whole if any event is bad."""
    ws = ws_of(request)
    get_stream(ws, name)
    try:
        sent = send_events(ws, name, body.events, source=f"stream {name!r}")
    except EventBatchError as exc:
        return JSONResponse({"detail": str(exc),
                             "errors": [p.to_dict() for p in exc.problems]}, status_code=422)
    return sent.to_dict()
