"""The run lifecycle: request -> claim -> execute (-> cancel).

Anything may ask for a run (the REST API, a storage trigger, a schedule): :func:`request_run`
validates the parameters and records the run as ``queued``; :func:`execute_queued` (the
service's run slots, ``python -m batchscore.pipelines RUN_ID``, the command line) claims it
and :func:`execute_run` turns it into a job with the library's own functions and runs that job
to its end. A run whose service died is executed again: its job resumes from its finished
mini-batches. The rows are written by :mod:`batchscore.state.runs` alone.
"""

from __future__ import annotations

from typing import Any

from fsspec.core import url_to_fs

from ..errors import BatchscoreError, InputError, UsageError
from ..jobs.control import cancel_job, get_job, submit_job
from ..jobs.runner import ProgressCallback, execute
from ..state import runs
from ..state.runs import Run
from ..workspace import Workspace
from .catalog import get_pipeline, pipeline_definition
from .datastore import data_url, resolve_data_path

__all__ = ["cancel_run", "claim_run", "execute_queued", "execute_run", "request_run"]


def request_run(ws: Workspace, pipeline: str, params: dict[str, Any], *,
                created_by: str | None = None) -> Run:
    """Validate ``params`` and queue a run of ``pipeline``; the service's slots execute it."""
    definition = get_pipeline(pipeline)
    model = definition.validate(ws, params)
    source = definition.source(model)
    if source is not None:
        fs, path = url_to_fs(data_url(ws, resolve_data_path(ws, source, "input")))
        if not fs.isfile(path):
            raise InputError(f"input {source!r} does not exist in the data store")
    with ws.engine.begin() as conn:
        return runs.create_run(conn, pipeline, model.model_dump(mode="json"),
                               created_by=created_by)


def claim_run(ws: Workspace, run_id: str, runner: str | None = None) -> bool:
    """Move a queued run to running for ``runner``; False when someone else took it."""
    return runs.claim_run(ws.engine, run_id, runner)


def execute_queued(ws: Workspace, run_id: str, *, runner: str | None = None,
                   progress: ProgressCallback | None = None) -> Run | None:
    """Claim a queued run and execute it to its end; None when another runner took it."""
    if not runs.claim_run(ws.engine, run_id, runner):
        return None
    return execute_run(ws, run_id, progress=progress)


def _public(ws: Workspace, reason: str | None) -> str | None:
    """The reason without the stores' internal locations: data-store paths become relative
    (what API clients send), system-store paths ``system:...``."""
    if reason is None:
        return None
    for prefix, shown in ((ws.data.url, ""), (ws.data.root, ""),
                          (ws.system.url, "system:"), (ws.system.root, "system:")):
        reason = reason.replace(f"{prefix}/", shown)
    return reason


def _finish(ws: Workspace, run_id: str, state: str, reason: str | None) -> Run:
    return runs.finish_run(ws.engine, run_id, state, _public(ws, reason))


def execute_run(ws: Workspace, run_id: str, *, progress: ProgressCallback | None = None
                ) -> Run:
    """Run a claimed run's job to its end (starting the job, or resuming it); returns the
    finished run. Errors of the run's own making end it as ``failed`` with their message."""
    run = runs.get_run(ws.engine, run_id)
    if run.finished:
        return run
    try:
        pipeline = pipeline_definition(run.pipeline)
        if run.job_id is None:
            params = pipeline.params.model_validate(run.params)
            plan = pipeline.plan(ws, params, run.id)
            if plan is None:
                state, reason = pipeline.execute(ws, params, run.id)
                return _finish(ws, run.id, state, reason)
            job, _ = submit_job(ws, plan.spec, plan.inputs, plan.output,
                                overwrite=bool(run.params.get("overwrite", False)))
            runs.attach_job(ws.engine, run.id, job.id, job.output_url)
        else:
            job = get_job(ws, run.job_id)
        if not job.finished:
            job = execute(ws, job.id, progress=progress)
    except BatchscoreError as exc:
        return _finish(ws, run.id, "failed", str(exc))
    except Exception as exc:  # a bug or an unreachable store: keep the message on the run
        return _finish(ws, run.id, "failed", f"{type(exc).__name__}: {exc}")
    return _finish(ws, run.id, job.state, job.reason)


def cancel_run(ws: Workspace, run_id: str) -> Run:
    """Cancel a queued run at once; a running one through its job (its slot finishes it)."""
    run = runs.get_run(ws.engine, run_id)
    if run.finished:
        raise UsageError(f"run {run.id} already {run.state}; it cannot be canceled")
    if run.job_id is None:
        return _finish(ws, run.id, "canceled", "canceled by request")
    job = get_job(ws, run.job_id)
    if not job.finished:
        cancel_job(ws, job.id, wait=10.0)
    job = get_job(ws, run.job_id)
    if job.interrupted or job.finished:
        return _finish(ws, run.id, job.state if job.finished else "canceled", job.reason)
    return runs.get_run(ws.engine, run.id)
