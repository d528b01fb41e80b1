"""Reading and writing jobs, mini-batches and attempts. Every write is one short transaction."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..redact import Locations, hide_password, public_text, public_value
from .tables import attempts, job_inputs, jobs, minibatches

__all__ = [
    "FINISHED",
    "LEASE_SECONDS",
    "AttemptRecord",
    "Job",
    "MiniBatch",
    "claim_job",
    "create_job",
    "finish_job",
    "get_job",
    "heartbeat",
    "list_jobs",
    "list_minibatches",
    "minibatch_counts",
    "next_pending",
    "parts_done",
    "record_attempts",
    "runner_name",
]

FINISHED = ("succeeded", "failed", "canceled")
LEASE_SECONDS = 20.0


@dataclass(frozen=True)
class Job:
    id: str
    key: str
    kind: str
    name: str
    state: str
    spec: dict[str, Any]
    inputs: list[str]
    output_url: str
    overwrite: bool
    reason: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    runner: str | None
    heartbeat_at: float | None
    cancel_requested: bool
    minibatches_total: int
    items_total: int
    items_succeeded: int
    items_failed: int

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def interrupted(self) -> bool:
        """Running, but its runner stopped renewing its lease (killed, or its machine died)."""
        return self.state == "running" and (
            self.heartbeat_at is None or time.time() - self.heartbeat_at > LEASE_SECONDS
            or _dead_here(self.runner)
        )

    @property
    def display_state(self) -> str:
        return "interrupted" if self.interrupted else self.state

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["display_state"] = self.display_state
        return data

    def public_dict(self, stores: Locations | None = None) -> dict[str, Any]:
        """:meth:`to_dict` for people and API clients: passwords in URLs hidden. With
        ``stores`` (a service's view), locations are shown as :func:`public_value` does:
        data-store paths relative (``outgoing/x``), system-store ones ``system:...``, and no
        other folder of the service's machine."""
        data = self.to_dict()
        if stores is None:
            data["inputs"] = [hide_password(u) for u in self.inputs]
            data["output_url"] = hide_password(self.output_url)
            return data
        data["inputs"] = public_value(self.inputs, stores)
        data["output_url"] = public_value(self.output_url, stores)
        data["spec"] = public_value(self.spec, stores)
        data["reason"] = public_text(self.reason, stores) if self.reason else self.reason
        return data


@dataclass(frozen=True)
class MiniBatch:
    job_id: str
    idx: int
    items: list[Any]
    n_items: int
    state: str
    attempts: int
    part: str | None
    items_succeeded: int
    items_failed: int
    worker: str | None
    started_at: float | None
    finished_at: float | None
    error: str | None


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(runner: str | None) -> bool:
    """True when ``runner`` is a process of this machine that no longer exists."""
    if not runner or ":" not in runner:
        return False
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return int(pid) != os.getpid() and _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


_CHUNK = 5_000  # rows per INSERT / SELECT of a plan or a listing: bounded memory


def create_job(
    engine: Engine,
    *,
    key: str,
    kind: str,
    name: str,
    spec: dict[str, Any],
    inputs: Sequence[str],
    output_url: str,
    overwrite: bool,
    batches: Iterable[tuple[list[Any], int]],
) -> tuple[Job, bool]:
    """Create a job with its plan in one transaction; or return the unfinished job of ``key``.

    ``batches`` may be a generator: the plan is inserted ``_CHUNK`` mini-batches at a time, so
    a plan of a million mini-batches is never held whole. Returns ``(job, created)``.
    """
    job_id = f"job-{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}"
    now = time.time()
    try:
        with engine.begin() as conn:
            conn.execute(insert(jobs).values(
                id=job_id, key=key, active_key=key, kind=kind, name=name, state="queued",
                spec=spec, inputs=[], output_url=output_url, overwrite=overwrite,
                created_at=now, cancel_requested=False, minibatches_total=0,
                items_total=0, items_succeeded=0, items_failed=0,
            ))
            rows: list[dict[str, Any]] = []
            for pos, url in enumerate(inputs):
                rows.append({"job_id": job_id, "pos": pos, "url": url})
                if len(rows) >= _CHUNK:
                    conn.execute(insert(job_inputs), rows)
                    rows = []
            if rows:
                conn.execute(insert(job_inputs), rows)
            total = items = 0
            chunk: list[dict[str, Any]] = []
            for items_, n in batches:
                chunk.append({"job_id": job_id, "idx": total, "items": items_, "n_items": n,
                              "state": "pending", "attempts": 0, "items_succeeded": 0,
                              "items_failed": 0})
                total += 1
                items += n
                if len(chunk) >= _CHUNK:
                    conn.execute(insert(minibatches), chunk)
                    chunk = []
            if chunk:
                conn.execute(insert(minibatches), chunk)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                minibatches_total=total, items_total=items))
    except IntegrityError:
        existing = find_active(engine, key)
        if existing is None:
            raise
        return existing, False
    job = get_job(engine, job_id, with_inputs=False)
    assert job is not None
    return dataclasses.replace(job, inputs=list(inputs)), True


def find_active(engine: Engine, key: str) -> Job | None:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.active_key == key)).mappings().first()
        return _job(row, conn) if row else None


def get_job(engine: Engine | Connection, job_id: str, *, with_inputs: bool = True
            ) -> Job | None:
    """The job ``job_id``; ``with_inputs=False`` leaves ``inputs`` empty (a runner does not
    need a million URLs to run the job's mini-batches)."""
    if isinstance(engine, Connection):
        row = engine.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return _job(row, engine if with_inputs else None) if row else None
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return _job(row, conn if with_inputs else None) if row else None


def job_inputs_of(conn: Connection, job_id: str) -> list[str]:
    """The job's expanded inputs, in order."""
    return list(conn.execute(
        select(job_inputs.c.url).where(job_inputs.c.job_id == job_id)
        .order_by(job_inputs.c.pos)).scalars())


def find_job_prefix(engine: Engine, prefix: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(jobs.c.id).where(jobs.c.id.like(f"{prefix}%")).limit(5)
        ).scalars())


def list_jobs(engine: Engine, limit: int = 50, state: str | None = None) -> list[Job]:
    query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
    if state:
        query = query.where(jobs.c.state == state)
    with engine.connect() as conn:
        return [_job(r, conn) for r in conn.execute(query).mappings().all()]


def list_minibatches(engine: Engine, job_id: str, states: tuple[str, ...] | None = None
                     ) -> list[MiniBatch]:
    query = select(minibatches).where(minibatches.c.job_id == job_id)
    if states:
        query = query.where(minibatches.c.state.in_(states))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(minibatches.c.idx)).mappings()
        return [MiniBatch(**dict(r)) for r in rows]


def minibatch_counts(engine: Engine, job_id: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(minibatches.c.state, func.count())
            .where(minibatches.c.job_id == job_id)
            .group_by(minibatches.c.state)
        ).all()
    return {state: count for state, count in rows}


def short_minibatches(engine: Engine, job_id: str) -> int:
    """The job's finished mini-batches whose ``run()`` returned fewer items than it was
    given (done, with failed items): they count as failed mini-batches, as on Azure."""
    with engine.connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(minibatches)
            .where(minibatches.c.job_id == job_id, minibatches.c.state == "done",
                   minibatches.c.items_failed > 0)
        ).scalar_one())


def next_pending(engine: Engine, job_id: str, after: int, limit: int = 1000
                 ) -> list[MiniBatch]:
    """Up to ``limit`` pending mini-batches with ``idx > after``, in order: the runner reads
    its plan a chunk at a time (one index range scan each), never all of it."""
    query = (select(minibatches)
             .where(minibatches.c.job_id == job_id, minibatches.c.state == "pending",
                    minibatches.c.idx > after)
             .order_by(minibatches.c.idx).limit(limit))
    with engine.connect() as conn:
        return [MiniBatch(**dict(r)) for r in conn.execute(query).mappings()]


def parts_done(engine: Engine, job_id: str, chunk: int = _CHUNK) -> Iterator[str]:
    """The parts of the job's finished mini-batches, in input order, read a chunk at a time."""
    after = -1
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(minibatches.c.idx, minibatches.c.part)
                .where(minibatches.c.job_id == job_id, minibatches.c.state == "done",
                       minibatches.c.idx > after)
                .order_by(minibatches.c.idx).limit(chunk)).all()
        if not rows:
            return
        after = rows[-1].idx
        yield from (r.part for r in rows if r.part)


def claim_job(engine: Engine, job_id: str, runner: str) -> bool:
    """Take the job's lease for ``runner`` unless another live runner holds it."""
    now = time.time()
    with engine.begin() as conn:
        job = get_job(conn, job_id, with_inputs=False)
        if job is None or job.finished:
            return False
        if job.runner not in (None, runner) and job.state == "running" and not job.interrupted:
            return False
        result = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, _same(jobs.c.runner, job.runner))
            .values(runner=runner, heartbeat_at=now, state="running",
                    started_at=job.started_at or now)
        )
        # Attempts that were running under the previous runner never finished.
        conn.execute(
            update(minibatches)
            .where(minibatches.c.job_id == job_id, minibatches.c.state == "running")
            .values(state="pending")
        )
        return result.rowcount == 1


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def heartbeat(engine: Engine, job_id: str, runner: str) -> tuple[bool, bool]:
    """Renew the lease. Returns ``(still_ours, cancel_requested)``."""
    with engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.runner == runner)
            .values(heartbeat_at=time.time())
        )
        row = conn.execute(
            select(jobs.c.runner, jobs.c.cancel_requested).where(jobs.c.id == job_id)
        ).first()
    if row is None:
        return False, True
    return row.runner == runner, bool(row.cancel_requested)


def mark_running(engine: Engine | Connection, job_id: str, idxs: list[int]) -> None:
    """Mark ``idxs`` running (in ``engine``'s own transaction, or in the one of a
    ``Connection``)."""
    if not idxs:
        return
    query = (update(minibatches)
             .where(minibatches.c.job_id == job_id, minibatches.c.idx.in_(idxs))
             .values(state="running", started_at=time.time()))
    if isinstance(engine, Connection):
        engine.execute(query)
        return
    with engine.begin() as conn:
        conn.execute(query)


@dataclass(frozen=True)
class AttemptRecord:
    """One finished attempt and the new state of its mini-batch."""

    idx: int
    attempt: int
    outcome: str
    state: str
    worker: str | None
    started_at: float | None
    finished_at: float
    items: int | None
    error: str | None
    part: str | None = None
    items_succeeded: int = 0
    items_failed: int = 0


_UPDATE_MINIBATCH = (
    update(minibatches)
    .where(minibatches.c.job_id == bindparam("b_job"), minibatches.c.idx == bindparam("b_idx"))
    .values(state=bindparam("state"), attempts=bindparam("attempt"), part=bindparam("part"),
            worker=bindparam("worker"), error=bindparam("error"),
            started_at=bindparam("started_at"), finished_at=bindparam("finished_at"),
            items_succeeded=bindparam("items_succeeded"),
            items_failed=bindparam("items_failed"))
)


def record_attempts(conn: Connection, job_id: str, records: list[AttemptRecord]) -> None:
    """Record finished attempts and their mini-batches' new states in ``conn``'s transaction
    (three statements however many attempts)."""
    if not records:
        return
    conn.execute(insert(attempts), [
        {"job_id": job_id, "idx": r.idx, "attempt": r.attempt, "worker": r.worker,
         "started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome,
         "items": r.items, "error": r.error}
        for r in records
    ])
    conn.execute(_UPDATE_MINIBATCH, [
        {"b_job": job_id, "b_idx": r.idx, "state": r.state, "attempt": r.attempt,
         "part": r.part, "worker": r.worker, "error": r.error, "started_at": r.started_at,
         "finished_at": r.finished_at, "items_succeeded": r.items_succeeded,
         "items_failed": r.items_failed}
        for r in records
    ])
    ok = sum(r.items_succeeded for r in records)
    failed = sum(r.items_failed for r in records)
    if ok or failed:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(
                items_succeeded=jobs.c.items_succeeded + ok,
                items_failed=jobs.c.items_failed + failed,
            )
        )


def request_cancel(engine: Engine, job_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))


def finish_job(engine: Engine, job_id: str, state: str, reason: str | None = None,
               *, with_inputs: bool = True) -> Job:
    with engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(
                state=state, reason=reason, finished_at=time.time(), active_key=None,
                runner=None,
            )
        )
        job = get_job(conn, job_id, with_inputs=with_inputs)
    assert job is not None
    return job


def list_attempts(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def _job(row: Any, conn: Connection | None = None) -> Job:
    """A job from its row; its inputs read from ``job_inputs`` through ``conn`` (a job of
    a database older than revision 0006 keeps them in its row). Without ``conn``: none."""
    data = dict(row)
    data.pop("active_key", None)
    if not data["inputs"] and conn is not None:
        data["inputs"] = job_inputs_of(conn, data["id"])
    return Job(**data)
