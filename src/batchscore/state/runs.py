"""Pipeline runs as durable rows: the one module that writes ``pipeline_runs``.

A run is created ``queued`` (or already ``running`` / ``failed``), has a job attached when its
pipeline's plan becomes a batch job, is claimed by one runner (``queued`` -> ``running``), and
is finished once (``succeeded``, ``failed``, ``canceled``); a run that a dead service left
``running`` is requeued. Everything else reads runs through the functions here.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ..errors import RunNotFoundError, SpecError
from ..redact import hide_password
from .jobs import runner_name
from .tables import pipeline_runs

__all__ = [
    "FINISHED",
    "RUN_STATES",
    "Run",
    "RunNotFoundError",
    "attach_job",
    "claim_run",
    "create_run",
    "finish_run",
    "get_run",
    "list_runs",
    "queued_run_ids",
    "requeue_run",
    "run_by_key",
    "run_of_job",
    "running_runs",
]

RUN_STATES = ("queued", "running", "succeeded", "failed", "canceled")
FINISHED = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class Run:
    id: str
    pipeline: str
    params: dict[str, Any]
    state: str
    run_key: str | None
    trigger_id: str | None
    job_id: str | None
    output_url: str | None
    reason: str | None
    created_by: str | None
    runner: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        """For people and API clients: passwords in URLs hidden."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["output_url"] = hide_password(self.output_url) if self.output_url else None
        data["params"] = {k: _hidden(v) for k, v in self.params.items()}
        return data


def _hidden(value: Any) -> Any:
    if isinstance(value, str):
        return hide_password(value)
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return value


def _run(row: Any) -> Run:
    return Run(**{k: row._mapping[k] for k in Run.__dataclass_fields__})


# --- writes ----------------------------------------------------------------------------------


def create_run(conn: Connection, pipeline: str, params: dict[str, Any], *,
               run_key: str | None = None, trigger_id: str | None = None,
               created_by: str | None = None, state: str = "queued",
               reason: str | None = None, job_id: str | None = None,
               output_url: str | None = None) -> Run:
    """Record a run inside the caller's transaction (an IntegrityError when ``run_key`` is
    taken: that run exists already). ``job_id``: the batch job it runs, known already."""
    now = time.time()
    values = dict(id=uuid.uuid4().hex[:16], pipeline=pipeline, params=params, state=state,
                  run_key=run_key, trigger_id=trigger_id, job_id=job_id, output_url=output_url,
                  reason=reason, created_by=created_by, runner=None, created_at=now,
                  started_at=None, finished_at=now if state in FINISHED else None)
    conn.execute(insert(pipeline_runs).values(**values))
    return Run(**values)  # type: ignore[arg-type]


def attach_job(engine: Engine, run_id: str, job_id: str, output_url: str | None) -> None:
    """Point a run at the batch job its plan became."""
    with engine.begin() as conn:
        conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run_id)
                     .values(job_id=job_id, output_url=output_url))


def claim_run(engine: Engine, run_id: str, runner: str | None = None) -> bool:
    """Move a queued run to running for ``runner``; False when someone else took it."""
    with engine.begin() as conn:
        result = conn.execute(
            update(pipeline_runs)
            .where(pipeline_runs.c.id == run_id, pipeline_runs.c.state == "queued")
            .values(state="running", runner=runner or runner_name(), started_at=time.time()))
        return result.rowcount == 1


def finish_run(engine: Engine, run_id: str, state: str, reason: str | None) -> Run:
    """End a run that has not ended yet (a finished run keeps its outcome); returns it."""
    if state not in FINISHED:
        raise ValueError(f"a run finishes as one of {FINISHED}, not {state!r}")
    with engine.begin() as conn:
        conn.execute(update(pipeline_runs)
                     .where(pipeline_runs.c.id == run_id,
                            pipeline_runs.c.state.not_in(FINISHED))
                     .values(state=state, reason=reason, finished_at=time.time()))
        return get_run(conn, run_id)


def requeue_run(engine: Engine, run_id: str) -> bool:
    """Queue again a run left running (by a service that is gone); False if it moved on."""
    with engine.begin() as conn:
        result = conn.execute(update(pipeline_runs)
                              .where(pipeline_runs.c.id == run_id,
                                     pipeline_runs.c.state == "running")
                              .values(state="queued"))
        return result.rowcount == 1


# --- reads -----------------------------------------------------------------------------------


def get_run(engine: Engine | Connection, run_id: str) -> Run:
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return get_run(conn, run_id)
    row = engine.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)).first()
    if row is None:
        raise RunNotFoundError(f"no pipeline run with id {run_id!r}")
    return _run(row)


def list_runs(engine: Engine, *, state: str | None = None, trigger_id: str | None = None,
              limit: int = 50) -> list[Run]:
    """Runs, newest first."""
    if state is not None and state not in RUN_STATES:
        raise SpecError(f"unknown run state {state!r}; states are {', '.join(RUN_STATES)}")
    query = select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc()).limit(limit)
    if state is not None:
        query = query.where(pipeline_runs.c.state == state)
    if trigger_id is not None:
        query = query.where(pipeline_runs.c.trigger_id == trigger_id)
    with engine.connect() as conn:
        return [_run(row) for row in conn.execute(query)]


def run_by_key(engine: Engine, run_key: str) -> Run | None:
    with engine.connect() as conn:
        row = conn.execute(select(pipeline_runs)
                           .where(pipeline_runs.c.run_key == run_key)).first()
    return _run(row) if row is not None else None


def run_of_job(engine: Engine, job_id: str) -> Run | None:
    """The newest unfinished run that executes job ``job_id``, if any."""
    with engine.connect() as conn:
        row = conn.execute(select(pipeline_runs)
                           .where(pipeline_runs.c.job_id == job_id,
                                  pipeline_runs.c.state.in_(("queued", "running")))
                           .order_by(pipeline_runs.c.created_at.desc())).first()
    return _run(row) if row is not None else None


def queued_run_ids(engine: Engine, limit: int = 10) -> list[str]:
    """The oldest queued runs' ids, first in first out."""
    with engine.connect() as conn:
        return [r.id for r in conn.execute(
            select(pipeline_runs.c.id).where(pipeline_runs.c.state == "queued")
            .order_by(pipeline_runs.c.created_at).limit(limit))]


def running_runs(engine: Engine) -> list[Run]:
    with engine.connect() as conn:
        return [_run(row) for row in conn.execute(
            select(pipeline_runs).where(pipeline_runs.c.state == "running"))]
