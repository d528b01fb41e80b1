"""A finished tabular job's output rows, one page at a time (:mod:`..output_rows`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...apimodels import OutputRowsPage
from ..context import ws_of
from ..deps import Viewer
from ..output_rows import DEFAULT_LIMIT, read_output_rows

__all__ = ["router"]

router = APIRouter()


@router.get("/jobs/{job_id}/output/rows", tags=["jobs"], response_model=OutputRowsPage)
def output_rows(request: Request, who: Viewer, job_id: str, limit: int = DEFAULT_LIMIT,
                offset: int = 0, columns: str | None = None) -> dict[str, Any]:
    """One page of a finished tabular job's output rows: ``{columns, rows, total, offset,
    truncated}``, rows as lists in ``columns`` order; ``columns=a,b`` picks columns.
    ``limit`` is at most 50,000 (400 beyond); not a tabular job is 400, a job that has not
    succeeded 409, an unknown job or a vanished output 404."""
    wanted = columns.split(",") if columns is not None else None
    page = read_output_rows(ws_of(request), job_id, limit=limit, offset=offset, columns=wanted)
    return page.to_dict()
