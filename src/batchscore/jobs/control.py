"""The job operations, as plain functions: the CLI and the service call these and nothing else."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import paths
from ..crash import crash_point
from ..errors import JobFailedError, JobNotFoundError, JobStateError, SpecError
from ..state import jobs as db
from ..storage import to_url
from ..workspace import Workspace
from .executors import EXECUTORS
from .hooks import hook
from .kinds import get_kind
from .logs import JobLogs
from .runner import ProgressCallback, execute
from .spec import JobSpec

__all__ = [
    "JobLogView",
    "cancel_job",
    "failure",
    "get_job",
    "items_in_progress",
    "job_logs",
    "list_jobs",
    "list_minibatches",
    "resume_job",
    "run_job",
    "submit_job",
]


def _job_key(spec: JobSpec, urls: list[str], output_url: str) -> str:
    """sha256 of ``[fingerprint, urls, output_url]`` as compact JSON, hashed a piece at a
    time (the same digest as of the whole text, without a copy of a million URLs)."""
    digest = hashlib.sha256()
    digest.update(b"[" + json.dumps(spec.fingerprint(), separators=(",", ":")).encode()
                  + b",[")
    for i, url in enumerate(urls):
        digest.update((b"," if i else b"") + json.dumps(url).encode())
    digest.update(b"]," + json.dumps(output_url).encode() + b"]")
    return digest.hexdigest()


def submit_job(
    ws: Workspace,
    spec: JobSpec,
    inputs: Sequence[str],
    output: str,
    *,
    overwrite: bool = False,
) -> tuple[db.Job, bool]:
    """Validate, plan and record a job without running it. Returns ``(job, created)``:
    the same spec, inputs and output as an unfinished job give that job back.

    Azure ML references are resolved here: a registered model (``azureml:NAME@latest``,
    ``models:/...``) to its version's files, a data asset input (``azureml:NAME@latest``)
    to its path, by the registry's ``prepare`` hook (:mod:`batchscore.jobs.hooks`)."""
    spec, inputs = hook("prepare")(ws, spec, inputs)
    kind = get_kind(spec.kind)
    kind.validate(spec)
    urls = kind.expand_inputs(spec, inputs)
    output_url = to_url(output).rstrip("/")
    key = _job_key(spec, urls, output_url)
    existing = db.find_active(ws.engine, key)
    if existing is not None:
        return existing, False
    kind.check_output(spec, output_url, overwrite)
    batches = kind.plan(spec, urls, ws.system)  # may be a generator: streamed into the plan
    job, created = db.create_job(
        ws.engine, key=key, kind=spec.kind, name=spec.name, spec=spec.model_dump(mode="json"),
        inputs=urls, output_url=output_url, overwrite=overwrite,
        batches=((b.items, b.n_items) for b in batches),
    )
    if created:
        logs = JobLogs(ws.system, job.id)
        logs.event("job-created", inputs=len(urls), minibatches=job.minibatches_total,
                   items=job.items_total, output=output_url)
        logs.close()
    crash_point("job-created")
    return job, created


def run_job(
    ws: Workspace,
    spec: JobSpec,
    inputs: Sequence[str],
    output: str,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    executor: str | None = None,
) -> db.Job:
    """Submit a job (or find the unfinished one with the same key) and run it to its end.

    ``executor`` (``"local"`` or ``"ray"``) overrides the workspace's ``executor.kind``.
    """
    _check_executor(executor)
    job, _ = submit_job(ws, spec, inputs, output, overwrite=overwrite)
    return _with_inputs(ws, execute(ws, job.id, progress=progress, executor=executor))


def _with_inputs(ws: Workspace, job: db.Job) -> db.Job:
    """The finished job with its inputs (the runner returns it without them)."""
    full = db.get_job(ws.engine, job.id)
    assert full is not None
    return full


def failure(ws: Workspace, job: db.Job) -> JobFailedError:
    """The error for a failed job: exit code 2 when the script itself broke its contract
    (its init() failed, or run() returned the wrong type), 1 for failures of the work."""
    error = JobFailedError(job.id, job.reason or "unknown reason")
    if any(a["outcome"] == "fatal" for a in db.list_attempts(ws.engine, job.id)):
        error.exit_code = 2
    return error


def resume_job(ws: Workspace, job_id: str, *, progress: ProgressCallback | None = None,
               executor: str | None = None) -> db.Job:
    """Finish an interrupted job; finished mini-batches are not run again."""
    _check_executor(executor)
    job = get_job(ws, job_id)
    if job.finished:
        raise JobStateError(f"job {job.id} already {job.state}; nothing to resume")
    return _with_inputs(ws, execute(ws, job.id, progress=progress, executor=executor))


def _check_executor(executor: str | None) -> None:
    if executor is not None and executor not in EXECUTORS:
        raise SpecError(
            f"unknown executor {executor!r}; available: {', '.join(map(repr, EXECUTORS))}")


def cancel_job(ws: Workspace, job_id: str, *, wait: float = 30.0) -> db.Job:
    """Cancel a job: a live runner stops at its next heartbeat; a job without one at once."""
    job = get_job(ws, job_id)
    if job.finished:
        raise JobStateError(f"job {job.id} already {job.state}; it cannot be canceled")
    if job.state == "queued" or job.interrupted:
        return db.finish_job(ws.engine, job.id, "canceled", "canceled by request")
    db.request_cancel(ws.engine, job.id)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        job = get_job(ws, job.id)
        if job.finished or job.interrupted:
            break
        time.sleep(0.2)
    if not job.finished:
        job = db.finish_job(ws.engine, job.id, "canceled", "canceled by request")
    return job


def get_job(ws: Workspace, job_id: str) -> db.Job:
    """The job with id ``job_id`` (a unique prefix is enough)."""
    job = db.get_job(ws.engine, job_id)
    if job is not None:
        return job
    matches = db.find_job_prefix(ws.engine, job_id)
    if len(matches) == 1:
        found = db.get_job(ws.engine, matches[0])
        assert found is not None
        return found
    if matches:
        raise JobNotFoundError(f"job id {job_id!r} is ambiguous: {', '.join(matches)}")
    raise JobNotFoundError(f"no job with id {job_id!r}; `batchscore job list` shows the jobs")


JOB_STATES = ("queued", "running", "succeeded", "failed", "canceled")


def list_jobs(ws: Workspace, *, limit: int = 50, state: str | None = None) -> list[db.Job]:
    """Jobs, newest first; ``state`` filters (an ``interrupted`` job is ``running``)."""
    if state is not None and state not in JOB_STATES:
        raise SpecError(f"unknown job state {state!r}; states are {', '.join(JOB_STATES)}")
    return db.list_jobs(ws.engine, limit=limit, state=state)


def list_minibatches(ws: Workspace, job_id: str) -> list[db.MiniBatch]:
    return db.list_minibatches(ws.engine, get_job(ws, job_id).id)


def items_in_progress(ws: Workspace, job: db.Job) -> int:
    """Items done inside the running job's mini-batches that are not finished yet (a video's
    frames inside its segments), as its runner last wrote them (at most a second old);
    0 for a job that is not running or whose runner has not said."""
    if job.state != "running":
        return 0
    try:
        overview = json.loads(ws.system.read_text(f"{paths.job_logs(job.id)}/{paths.OVERVIEW}"))
        return max(0, int(overview["items"].get("in_progress", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0


@dataclass(frozen=True)
class JobLogView:
    job_id: str
    overview: dict[str, Any] | None
    events: list[dict[str, Any]]
    errors: str
    timings: list[dict[str, Any]]
    worker_logs: dict[str, str]


def job_logs(ws: Workspace, job_id: str) -> JobLogView:
    """Everything the job logged in the system store."""
    job = get_job(ws, job_id)
    store = ws.system
    prefix = paths.job_logs(job.id)

    def text(name: str) -> str:
        return store.read_text(f"{prefix}/{name}") if store.exists(prefix, name) else ""

    def jsonl(name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in text(name).splitlines() if line.strip()]

    overview = json.loads(text(paths.OVERVIEW)) if store.exists(prefix, paths.OVERVIEW) \
        else None
    workers = {
        rel.rsplit("/", 1)[-1]: store.read_text(rel)
        for rel in store.list(paths.workers_dir(prefix))
    }
    return JobLogView(job.id, overview, jsonl(paths.EVENTS), text(paths.ERRORS),
                      jsonl(paths.TIMINGS), workers)
