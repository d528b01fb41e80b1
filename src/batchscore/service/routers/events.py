"""Events: anomalies of the online scoring service (and other sources).

``GET /api/v1/events`` lists events newest first (filters: ``since``, ``kind``, ``source``,
``subject``; ``limit``), each flagged ``ongoing`` when it raised an anomaly that has not been
resolved; ``GET /api/v1/events/ongoing`` lists just those. Viewers may read both.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from ...apimodels import EventView
from ...state.events import MAX_LIMIT, list_events, ongoing_events, parse_since
from ..context import ws_of
from ..deps import Viewer

__all__ = ["router"]

router = APIRouter()


@router.get("/events", tags=["events"], response_model=list[EventView])
def events(
    request: Request,
    who: Viewer,
    since: str | None = Query(None, max_length=64, description=(
        "Only events created at or after this time: UNIX seconds or ISO 8601 (UTC if no "
        "zone).")),
    kind: str | None = Query(None, max_length=32, description=(
        "latency, error_rate, client_error_rate, ...")),
    source: str | None = Query(None, max_length=64, description="serving, ..."),
    subject: str | None = Query(None, max_length=300, description="Such as diabetes/3."),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
) -> list[dict[str, Any]]:
    """Events, newest first, each with ``ongoing``: true for an anomaly still going on."""
    engine = ws_of(request).engine
    found = list_events(engine, since=parse_since(since), kind=kind, source=source,
                        subject=subject, limit=limit)
    ongoing = {e.id for e in ongoing_events(engine)}
    return [{**e.to_dict(), "ongoing": e.id in ongoing} for e in found]


@router.get("/events/ongoing", tags=["events"], response_model=list[EventView])
def ongoing(request: Request, who: Viewer,
            source: str | None = Query(None, max_length=64, description="serving, ...")
            ) -> list[dict[str, Any]]:
    """The anomalies going on: for each source, subject and kind, its newest event if that
    one raised an anomaly; most recent first."""
    return [{**e.to_dict(), "ongoing": True}
            for e in ongoing_events(ws_of(request).engine, source=source)]
