"""Jobs: list, submit an entry-script job (admin), show, mini-batches, logs, cancel.

Jobs are shown with the locations an API client knows: data-store paths relative to the data
store (as every request gives them), system-store paths as ``system:...``; never the
service's own folders, never a password."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Query, Request

from ... import jobs as job_api
from ...apimodels import JobLogsView, JobRecord, JobSubmitted, JobSummary, JobView, MiniBatchView
from ...paths import frames_dir, job_logs
from ...redact import public_text, public_value
from ..context import service_of, ws_of
from ..deps import Admin, Operator, Viewer
from ..submit import JobIn, prepare_job, record_job, store_locations
from ..views import job_record, job_summary, job_view

__all__ = ["router"]

router = APIRouter()
_LOG_TAIL = 200_000  # characters of each worker log returned


@router.get("/jobs", tags=["jobs"], response_model=list[JobSummary])
def jobs(request: Request, who: Viewer, state: str | None = None,
         limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    ws = ws_of(request)
    return [job_summary(ws, j) for j in job_api.list_jobs(ws, limit=limit, state=state)]


def _job_links(job_id: str, run_id: str) -> dict[str, str]:
    return {"self": f"/api/v1/jobs/{job_id}", "minibatches": f"/api/v1/jobs/{job_id}/minibatches",
            "logs": f"/api/v1/jobs/{job_id}/logs", "run": f"/api/v1/runs/{run_id}"}


@router.post("/jobs", status_code=202, tags=["jobs"], response_model=JobSubmitted)
def submit(request: Request, who: Admin, body: JobIn) -> dict[str, Any]:
    """Submit an entry-script job (admin): its code (and a small model folder) travel in the
    bundle and are kept in the system store; inputs and output are data-store paths. Answers
    at once with the job's and its run's ids; the run slots run it. The same submission
    while its job is unfinished returns that job (``created`` false). A bundle over its
    limit is 413."""
    service = service_of(request)
    ws = service.ws
    prepared = prepare_job(ws, body)
    service.take_run(who.name)
    done = record_job(ws, prepared, created_by=who.name)
    service.slots.wake.set()
    if done.job is None:  # a connection's query: the run plans the job, in a run slot
        return {"job_id": None, "run_id": done.run_id, "created": done.created,
                "script": f"system:{done.script}", "job": None,
                "links": {"run": f"/api/v1/runs/{done.run_id}"}}
    return {"job_id": done.job.id, "run_id": done.run_id, "created": done.created,
            "script": f"system:{done.script}",
            "job": job_summary(ws, done.job), "links": _job_links(done.job.id, done.run_id)}


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=JobView)
def job(request: Request, who: Viewer, job_id: str) -> dict[str, Any]:
    ws = ws_of(request)
    return job_view(ws, job_api.get_job(ws, job_id))


@router.get("/jobs/{job_id}/minibatches", tags=["jobs"], response_model=list[MiniBatchView])
def minibatches(request: Request, who: Viewer, job_id: str) -> list[dict[str, Any]]:
    """Each mini-batch: state, attempts, worker, times, error."""
    ws = ws_of(request)
    stores = store_locations(ws)
    shown = []
    for mb in job_api.list_minibatches(ws, job_id):
        data = dataclasses.asdict(mb)
        data["items"] = public_value(mb.items, stores)
        data["error"] = public_text(mb.error, stores) if mb.error else mb.error
        shown.append(data)
    return shown


@router.get("/jobs/{job_id}/logs", tags=["jobs"], response_model=JobLogsView)
def logs(request: Request, who: Viewer, job_id: str) -> dict[str, Any]:
    """The job's logs from the system store: overview, events, errors, timings, per-frame
    batch timings (video) and the tail of every worker's stdout/stderr."""
    ws = ws_of(request)
    stores = store_locations(ws)
    view = job_api.job_logs(ws, job_id)
    frames: list[dict[str, Any]] = []
    for rel in ws.system.list(frames_dir(job_logs(view.job_id))):
        frames += [json.loads(line) for line in ws.system.read_text(rel).splitlines()
                   if line.strip()]
    return {"job_id": view.job_id,
            "overview": public_value(view.overview, stores),
            "events": public_value(view.events, stores),
            "errors": public_text(view.errors, stores),
            "timings": public_value(view.timings, stores),
            "worker_logs": {k: public_text(v[-_LOG_TAIL:], stores)
                            for k, v in view.worker_logs.items()},
            "frames": frames}


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], response_model=JobRecord)
def cancel_job(request: Request, who: Operator, job_id: str) -> dict[str, Any]:
    ws = ws_of(request)
    return job_record(ws, job_api.cancel_job(ws, job_id, wait=10.0))
