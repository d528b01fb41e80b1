"""A video-style run's quality report and contact sheet: ``GET /api/v1/runs/{id}/quality``
and ``GET /api/v1/runs/{id}/contact.png`` (viewers).

Both files lie beside the run's output in the data store (``<output>.quality.json``,
``<output>.contact.png``, written by the video job, ``batchscore.video.quality``). Only the
run's own output's report is served: the path comes from the run's record, resolved inside
the data store, never from the request."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fsspec.core import url_to_fs

from ...apimodels import QualityReport
from ...pipelines import PipelineNotFoundError, data_url, get_pipeline, get_run, resolve_data_path
from ...video.quality import report_paths
from ..context import ws_of
from ..deps import Viewer

__all__ = ["router"]

router = APIRouter()

_MAX_BYTES = 20 * 1024 * 1024  # a contact sheet is well under 2 MiB; refuse anything odd


def _has_report(pipeline: str) -> bool:
    """Whether the catalog says runs of ``pipeline`` write a quality report."""
    try:
        return get_pipeline(pipeline).quality_report
    except PipelineNotFoundError:
        return False


def _report_file(request: Request, run_id: str, which: int) -> bytes:
    ws = ws_of(request)
    found = get_run(ws.engine, run_id)
    if not _has_report(found.pipeline):
        raise HTTPException(404, f"run {run_id} is a {found.pipeline} run; only video-style "
                            "runs have a quality report")
    if found.state != "succeeded" or not found.output_url:
        raise HTTPException(409, f"run {run_id} is {found.state}; it has no report yet")
    rel = report_paths(resolve_data_path(ws, found.output_url, "output"))[which]
    fs, path = url_to_fs(data_url(ws, rel))
    if not fs.isfile(path):
        raise HTTPException(404, f"run {run_id} has no {rel.rsplit('/', 1)[-1]} (the run "
                            "was made without a report, or it was removed)")
    if fs.size(path) > _MAX_BYTES:
        raise HTTPException(500, f"{rel} is larger than {_MAX_BYTES} bytes")
    with fs.open(path, "rb") as fh:
        return fh.read()


@router.get("/runs/{run_id}/quality", tags=["runs"], response_model=QualityReport)
def quality(request: Request, who: Viewer, run_id: str) -> Response:
    """The quality report of a succeeded video-style run: content kept, style matched,
    warping error, per sampled frame and summarised, with the settings and the time taken.
    404 when the run is not a video-style run or has no report, 409 while it is not done."""
    result: dict[str, Any] = json.loads(_report_file(request, run_id, 0))
    return JSONResponse(result)  # as the job wrote it: the model documents, never filters


@router.get("/runs/{run_id}/contact.png", tags=["runs"],
            responses={200: {"content": {"image/png": {}}}})
def contact_sheet(request: Request, who: Viewer, run_id: str) -> Response:
    """The contact sheet (PNG) of a succeeded video-style run: input and output frames side
    by side at several moments, with the figures on it."""
    return Response(_report_file(request, run_id, 1), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=60"})
