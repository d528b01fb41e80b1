"""The runner: drives one job's mini-batches through an executor to a committed output.

It holds the job's lease (renewed by a heartbeat thread), dispatches pending mini-batches,
records every attempt, retries up to ``max_retries``, enforces ``error_threshold`` (failed
items) and ``mini_batch_error_threshold`` (failed mini-batches: run() raised on its last
attempt, or returned fewer items than it was given), and
assembles the output in input order once everything has run. Killed at any point, it leaves
a job that another runner (``job resume``) finishes without re-running finished mini-batches.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from .. import paths, telemetry
from ..crash import crash_point
from ..errors import JobStateError
from ..state import jobs as db
from ..state.db import connected_engines
from ..state.tables import jobs as jobs_table
from ..workspace import Workspace, machine_dir
from .executors import Completion, Executor, Outcome, make_executor
from .kinds import CommitContext, JobKind, WorkerConfig, get_kind
from .logs import JobLogs
from .script import drop_model_folder, model_folder_jobs
from .spec import JobSpec

__all__ = ["ProgressSnapshot", "execute"]


@dataclass(frozen=True)
class ProgressSnapshot:
    job_id: str
    state: str
    minibatches_total: int
    minibatches_done: int
    minibatches_failed: int
    items_total: int
    items_succeeded: int
    items_failed: int
    # items done so far inside the mini-batches running now (kinds that report it: video)
    items_in_progress: int = 0


ProgressCallback = Callable[[ProgressSnapshot], None]


_PLAN_CHUNK = 1_000  # pending mini-batches read from the plan at a time
# Group commit: finished attempts wait in memory (uncounted) at most this many times the
# duration of a recent transaction before they are saved together, so that the commits take
# a bounded share of the runner's time however short the mini-batches are and however slow
# the database's commit (an fsync'd PostgreSQL commit on a loaded machine: several ms) ...
_GROUP_FACTOR = 4.0
_GROUP_MAX_S = 0.5  # ... and never longer than this (progress is shown as it is saved)


def get_kind_of(ws: Workspace, job_id: str) -> JobKind:
    """The kind of job ``job_id``, from its row alone."""
    job = db.get_job(ws.engine, job_id, with_inputs=False)
    if job is None:
        raise JobStateError(f"job {job_id} does not exist")
    return get_kind(job.kind)


class _Parts(Collection[str]):
    """The finished mini-batches' parts, in input order: read from the database a chunk at a
    time each time they are iterated, never held whole."""

    def __init__(self, ws: Workspace, job_id: str) -> None:
        self.ws, self.job_id = ws, job_id
        self._len: int | None = None

    def __iter__(self) -> Iterator[str]:
        return db.parts_done(self.ws.engine, self.job_id)

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self)
        return self._len

    def __contains__(self, item: object) -> bool:
        return any(p == item for p in self)


class _Heartbeat(threading.Thread):
    def __init__(self, ws: Workspace, job_id: str, runner: str, every: float = 2.0) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.ws, self.job_id, self.runner, self.every = ws, job_id, runner, every
        self.lost = False
        self.cancel = False
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                ours, cancel = db.heartbeat(self.ws.engine, self.job_id, self.runner)
            except Exception:  # nosec B112  # next beat retries
                continue
            self.lost = self.lost or not ours
            self.cancel = self.cancel or cancel

    def stop(self) -> None:
        self._halt.set()


class _CtrlC:
    """Ctrl-C while mini-batches run, taken as an event that the dispatch loop acts on at
    its next round (at most its wait, 0.2 s, later): it stops the workers, whatever they are
    doing, and raises KeyboardInterrupt from there. Python's own handler raises wherever the
    main thread happens to be: inside a finalizer or a library's broad ``except`` the
    interrupt is lost and the job runs on, and between two lock acquisitions in
    ``concurrent.futures.wait`` it leaves a future's lock held, which the pool's threads then
    wait for when it is stopped. A second Ctrl-C raises at once. Installed only on the main
    thread over Python's default handler (a program that set its own keeps it)."""

    def __init__(self) -> None:
        self.pressed = threading.Event()
        self._installed = False

    def __enter__(self) -> _CtrlC:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pressed.is_set():
            raise KeyboardInterrupt
        self.pressed.set()

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def execute(
    ws: Workspace,
    job_id: str,
    *,
    progress: ProgressCallback | None = None,
    executor: str | None = None,
) -> db.Job:
    """Run (or resume) job ``job_id`` to its end in this process; returns the finished job,
    without its list of inputs (``inputs`` is empty: a million URLs are not read back at the
    end of a run; :func:`batchscore.jobs.control.run_job` returns them)."""
    runner = db.runner_name()
    if not db.claim_job(ws.engine, job_id, runner):
        job = db.get_job(ws.engine, job_id)
        if job is None:
            raise JobStateError(f"job {job_id} does not exist")
        if job.finished:
            raise JobStateError(f"job {job_id} already {job.state}; nothing to resume")
        age = time.time() - (job.heartbeat_at or 0)
        raise JobStateError(
            f"job {job_id} is being run by {job.runner} (heartbeat {age:.0f}s ago); "
            "cancel it or wait for it"
        )
    crash_point("claimed")
    # inputs only for a kind whose workers or commit read them (a video: its one file)
    job = db.get_job(ws.engine, job_id, with_inputs=get_kind_of(ws, job_id).uses_inputs)
    assert job is not None
    with telemetry.job_trace(ws.settings.otlp_endpoint, job.id, job.name, job.kind):
        return _Run(ws, job, runner, progress, executor or ws.settings.executor).run()


class _Run:
    def __init__(self, ws: Workspace, job: db.Job, runner: str,
                 progress: ProgressCallback | None, executor: str) -> None:
        self.ws, self.job, self.runner, self.progress = ws, job, runner, progress
        self.executor_kind = executor
        self.spec = JobSpec(**job.spec)
        self.logs = JobLogs(ws.system, job.id)
        # The plan stays in the database: the runner holds the counts, the next chunk of
        # pending mini-batches, and those in flight or waiting for a retry; never all of them.
        counts = db.minibatch_counts(ws.engine, job.id)
        self.total = job.minibatches_total
        self.done = counts.get("done", 0)
        self.failed = counts.get("failed", 0)
        self.short = db.short_minibatches(ws.engine, job.id)  # done, fewer items returned
        self.info: dict[int, tuple[list[Any], int, int]] = {}  # idx -> items, n, attempts
        self.front: deque[int] = deque()  # lost in flight: run again first
        self.chunk: deque[int] = deque()  # read from the plan, not yet submitted
        self.retries: deque[int] = deque()  # failed attempts to retry, after the plan
        self.read_to = -1  # the plan was read up to this idx
        self.plan_left = counts.get("pending", 0) > 0
        self.items_ok = job.items_succeeded
        self.items_failed = job.items_failed
        self.fatal: str | None = None
        self.first_error: str | None = None
        self.running: dict[int, int] = {}  # idx -> attempt, submitted and not completed
        self.in_progress = 0
        self._progress_read: float | None = None  # time.monotonic() of the last read; None: never
        # every mini-batch ran; the workers are stopped once the job has ended
        self._open: Executor | None = None
        self._scratch: Path | None = None  # this run's WorkerConfig.scratch_dir
        # Not yet saved (group commit): attempts, mini-batches started, their log timings,
        # and what they add to the counts, which count them only once they are saved.
        self._unsaved: list[db.AttemptRecord] = []
        self._unsaved_started: list[int] = []
        self._unsaved_timings: list[dict[str, Any]] = []
        self._unsaved_counts = {"done": 0, "failed": 0, "ok": 0, "items_failed": 0, "short": 0}
        self._unsaved_since: float | None = None  # time.monotonic() of the oldest
        self._save_now = False  # a failure, a retry: saved in the round it arrived
        self._commit_s = 0.0  # a recent transaction's duration (moving average)

    def _next(self) -> int | None:
        """The next mini-batch to submit: a lost one, the plan's next, then retries."""
        if self.front:
            return self.front.popleft()
        if not self.chunk and self.plan_left:
            batch = db.next_pending(self.ws.engine, self.job.id, self.read_to, _PLAN_CHUNK)
            for mb in batch:
                self.info[mb.idx] = (mb.items, mb.n_items, mb.attempts)
                self.chunk.append(mb.idx)
            if batch:
                self.read_to = batch[-1].idx
            self.plan_left = len(batch) == _PLAN_CHUNK
        if self.chunk:
            return self.chunk.popleft()
        if self.retries:
            return self.retries.popleft()
        return None

    @property
    def _has_pending(self) -> bool:
        return bool(self.front or self.chunk or self.plan_left or self.retries)

    # -- helpers -------------------------------------------------------------------------
    def _snapshot(self, state: str = "running") -> ProgressSnapshot:
        return ProgressSnapshot(
            self.job.id, state, self.total, self.done, self.failed,
            self.job.items_total, self.items_ok, self.items_failed,
            self._items_in_progress() if state == "running" else 0,
        )

    def _items_in_progress(self) -> int:
        """Items done inside running mini-batches, read from their progress files at most
        once a second (a remote system store is a request per running mini-batch)."""
        now = time.monotonic()
        if self._progress_read is not None and now - self._progress_read < 1.0:
            return self.in_progress
        self._progress_read = now
        total = 0
        for idx, attempt in list(self.running.items()):
            try:
                done = json.loads(self.ws.system.read_text(
                    paths.progress_file(paths.job_logs(self.job.id), idx, attempt)))["done"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not written yet, or being replaced
            total += min(int(done), self.info[idx][1])
        self.in_progress = total
        return total

    def _report(self, state: str = "running", force: bool = False) -> None:
        snap = self._snapshot(state)
        self.logs.overview({
            "job": snap.job_id, "state": state,
            "minibatches": {
                "total": snap.minibatches_total, "done": snap.minibatches_done,
                "failed": snap.minibatches_failed,
                "pending": snap.minibatches_total - snap.minibatches_done
                - snap.minibatches_failed,
            },
            "items": {"total": snap.items_total, "succeeded": snap.items_succeeded,
                      "failed": snap.items_failed, "in_progress": snap.items_in_progress},
        }, force=force)
        if self.progress is not None:
            self.progress(snap)

    def _over_threshold(self) -> bool:
        limit = self.spec.error_threshold
        batches = self.spec.mini_batch_error_threshold
        return (limit != -1 and self.items_failed > limit) or (
            batches != -1 and self.failed + self.short > batches)

    def _staging(self) -> Path:
        if self.ws.system.is_local:
            return self.ws.system.local_path(paths.job_staging(self.job.id))
        return machine_dir(self.job.id, "staging")

    def _scratch_root(self) -> Path:
        """The job's local scratch: one folder per run in it (see WorkerConfig.scratch_dir)."""
        return self._staging().parent / "scratch"

    def _drop_stale_scratch(self) -> None:
        """A killed run's scratch (copies of remote inputs, models, code): this runner holds
        the lease, so no other run of this job on this machine still uses it."""
        root = self._scratch_root()
        if root.is_dir():
            for child in root.iterdir():
                _remove(child)

    def _drop_scratch(self) -> None:
        """This run's scratch, once its workers have stopped."""
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            _remove(scratch)

    # -- the run -------------------------------------------------------------------------
    def run(self) -> db.Job:
        self._drop_stale_model_folders()
        self._drop_stale_scratch()
        self.logs.event("runner-started", runner=self.runner,
                        pending=self.total - self.done - self.failed,
                        done=self.done, failed=self.failed)
        beat = _Heartbeat(self.ws, self.job.id, self.runner)
        beat.start()
        try:
            outcome = self._dispatch(beat) if self._has_pending else "complete"
            if outcome == "canceled":
                return self._finish("canceled", "canceled by request")
            if outcome == "lost":
                raise JobStateError(f"job {self.job.id}: another runner took over the job")
            if self.fatal is not None:
                return self._finish("failed", self.fatal)
            if self._over_threshold():
                return self._finish("failed", self._threshold_reason())
            crash_point("before-commit")
            self._commit()  # an error here (say, an unwritable output) leaves it resumable
            crash_point("output-committed")
            return self._finish("succeeded", None)
        except BaseException:
            if self._open is not None:  # interrupted during the commit: stop the workers now
                self._open.abort()
                self._open = None
                self._drop_scratch()
            if not beat.lost:
                self._release()
            raise
        finally:
            beat.stop()
            if self._open is not None:  # every mini-batch ran and the job ended
                self._open.close_later(then=self._drop_scratch)
                self._open = None
            self.logs.close()

    def _threshold_reason(self) -> str:
        limit = self.spec.error_threshold
        if limit != -1 and self.items_failed > limit:
            reason = f"{self.items_failed} item(s) failed, more than error_threshold={limit}"
        else:
            reason = (f"{self.failed + self.short} mini-batch(es) failed, more than "
                      f"mini_batch_error_threshold={self.spec.mini_batch_error_threshold}")
        if self.first_error:
            reason += f"; first error: {self.first_error}"
        return reason

    def _dispatch(self, beat: _Heartbeat) -> str:
        executor = make_executor(self.executor_kind, ray_address=self.ws.settings.ray_address)
        get_kind(self.spec.kind).stage(self.job.id, self.spec, self.ws.system)
        connected_engines()  # any one-time search for engines, here, not in every worker
        root = self._scratch_root()
        root.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        cfg = WorkerConfig(
            job_id=self.job.id, spec=self.spec, inputs=tuple(self.job.inputs),
            system_url=self.ws.system.url,
            log_prefix=paths.job_logs(self.job.id), staging_dir=str(self._staging()),
            parts_prefix=paths.job_parts(self.job.id), scratch_dir=str(self._scratch),
        )
        timeout = self.spec.retry_settings.timeout
        try:
            executor.start(cfg, self.spec.workers)
            with _CtrlC() as ctrl_c:
                outcome = self._rounds(executor, beat, ctrl_c, timeout)
        except BaseException:
            executor.abort()
            self._drop_scratch()
            raise
        if outcome != "complete":  # _rounds stopped the workers
            self._drop_scratch()
        elif get_kind(self.spec.kind).commit_reads_shutdown:
            executor.close()  # out of _CtrlC: a Ctrl-C while workers shut down raises
            self._drop_scratch()
        else:
            self._open = executor  # stopped once the job has ended (run())
        return outcome

    def _rounds(self, executor: Executor, beat: _Heartbeat, ctrl_c: _CtrlC,
                timeout: float) -> str:
        """Submit, wait, record, until every mini-batch has run or the run must stop."""
        while self._has_pending or executor.in_flight:
            started: list[int] = []
            while executor.in_flight < executor.capacity:
                idx = self._next()
                if idx is None:
                    break
                items, _, attempts = self.info[idx]
                executor.submit(idx, attempts + 1, items, timeout)
                self.running[idx] = attempts + 1
                started.append(idx)
            completions = executor.wait(self._wait_s())
            self._record(completions, started)
            if (self._save_now or self._save_due() or ctrl_c.pressed.is_set() or beat.lost
                    or beat.cancel or not (self._has_pending or executor.in_flight)):
                self._save()
            self._report()
            if ctrl_c.pressed.is_set():
                raise KeyboardInterrupt  # the caller stops the workers; what runs resumes
            if beat.lost:
                executor.abort()
                return "lost"
            if beat.cancel:
                executor.abort()
                return "canceled"
            if self.fatal is not None or self._over_threshold():
                executor.abort()
                return "stopped"
        if ctrl_c.pressed.is_set():
            raise KeyboardInterrupt
        return "complete"

    def _wait_s(self) -> float:
        """How long to wait for completions: 0.2 s, or until unsaved ones are due."""
        if self._unsaved_since is None:
            return 0.2
        due = self._unsaved_since + self._group_s() - time.monotonic()
        return min(0.2, max(0.0, due))

    def _group_s(self) -> float:
        return min(_GROUP_MAX_S, _GROUP_FACTOR * self._commit_s)

    def _save_due(self) -> bool:
        return self._unsaved_since is not None and (
            time.monotonic() - self._unsaved_since >= self._group_s())

    def _save(self) -> None:
        """One transaction: the mini-batches started and the attempts finished since the
        last; then, and only then, they count (progress, thresholds, the log's timings)."""
        if not (self._unsaved or self._unsaved_started):
            return
        records, started = self._unsaved, self._unsaved_started
        began = time.monotonic()
        with self.ws.engine.begin() as conn:
            if started:
                db.mark_running(conn, self.job.id, started)
            db.record_attempts(conn, self.job.id, records)
        took = time.monotonic() - began
        self._commit_s = took if not self._commit_s else 0.7 * self._commit_s + 0.3 * took
        counts = self._unsaved_counts
        self.done += counts["done"]
        self.failed += counts["failed"]
        self.items_ok += counts["ok"]
        self.items_failed += counts["items_failed"]
        self.short += counts["short"]
        self.logs.timings(self._unsaved_timings)  # and, with telemetry on, the attempts' spans
        self._unsaved, self._unsaved_started, self._unsaved_timings = [], [], []
        self._unsaved_counts = dict.fromkeys(counts, 0)
        self._unsaved_since = None
        self._save_now = False
        for _ in records:  # each attempt now committed: a crash point a test may pick
            crash_point("attempt-recorded")

    def _record(self, completions: list[Completion], started: list[int] | None = None
                ) -> None:
        """Take a round's completions (and the mini-batches it started) into the unsaved
        ones: :meth:`_save` commits them, at once after a failure."""
        if started:
            self._unsaved_started.extend(started)
            if self._unsaved_since is None:
                self._unsaved_since = time.monotonic()
        if not completions:
            return
        max_retries = self.spec.retry_settings.max_retries
        now = time.time()
        timings = self._unsaved_timings
        records = self._unsaved
        counts = self._unsaved_counts
        if self._unsaved_since is None:
            self._unsaved_since = time.monotonic()
        for c in completions:
            items, n, _ = self.info[c.idx]
            self.running.pop(c.idx, None)
            self._progress_read = 0.0  # re-read: a finished mini-batch moved to the done count
            if c.outcome is Outcome.LOST:  # not the mini-batch's fault: run it again, uncounted
                self.front.append(c.idx)
                self.logs.event("requeued", minibatch=c.idx, reason=c.error)
                continue
            self.info[c.idx] = (items, n, c.attempt)
            if c.outcome is Outcome.OK and c.result is not None:
                self._record_ok(c, n)
                continue
            error = c.error or c.outcome.value
            retry = c.outcome is not Outcome.FATAL and c.attempt <= max_retries
            state = "pending" if retry else "failed"
            failed_items = 0 if retry else n
            records.append(db.AttemptRecord(
                c.idx, c.attempt, outcome=c.outcome.value, state=state,
                worker=c.worker, started_at=None, finished_at=now, items=None, error=error,
                items_failed=failed_items,
            ))
            self.logs.error(c.idx, c.attempt, c.worker, c.outcome.value, error)
            self._save_now = True
            timings.append({"minibatch": c.idx, "attempt": c.attempt, "worker": c.worker,
                            "start": None, "end": now, "items": n, "returned": None,
                            "outcome": c.outcome.value})
            last_line = error.strip().splitlines()[-1] if error.strip() else error
            if c.outcome is Outcome.FATAL:
                self.fatal = self.fatal or error.strip()
            elif retry:
                self.retries.append(c.idx)
                self.logs.event("retry", minibatch=c.idx, attempt=c.attempt,
                                outcome=c.outcome.value, error=last_line)
            else:
                counts["failed"] += 1
                del self.info[c.idx]
                counts["items_failed"] += failed_items
                self.first_error = self.first_error or (
                    f"mini-batch {c.idx}: {last_line}")
                self.logs.event("minibatch-failed", minibatch=c.idx,
                                attempts=c.attempt, error=last_line)

    def _record_ok(self, c: Completion, n: int) -> None:
        """A mini-batch of ``n`` items that ran: its attempt, counts and timing, unsaved."""
        r = c.result
        assert r is not None
        counts = self._unsaved_counts
        ok = min(r.returned, n)
        short = n - ok
        error = None
        if short:
            error = r.error or (
                f"run() returned {r.returned} item(s) for a mini-batch of {n}; "
                f"the {short} missing item(s) count as failed")
            self.logs.error(c.idx, c.attempt, r.worker, "short", error)
            self.logs.event("items-failed", minibatch=c.idx, attempt=c.attempt,
                            items=short, error=error)
            self.first_error = self.first_error or error
            counts["short"] += 1
            self._save_now = True
        self._unsaved.append(db.AttemptRecord(
            c.idx, c.attempt, outcome="ok", state="done",
            worker=r.worker, started_at=r.started_at, finished_at=r.finished_at,
            items=r.returned, error=error, part=r.part,
            items_succeeded=ok, items_failed=short,
        ))
        counts["done"] += 1
        del self.info[c.idx]
        counts["ok"] += ok
        counts["items_failed"] += short
        self._unsaved_timings.append({"minibatch": c.idx, "attempt": c.attempt,
                                      "worker": r.worker, "start": r.started_at,
                                      "end": r.finished_at, "items": n,
                                      "returned": r.returned, "outcome": "ok"})

    def _commit(self) -> None:
        parts = _Parts(self.ws, self.job.id)
        get_kind(self.spec.kind).commit(CommitContext(
            job_id=self.job.id, spec=self.spec, inputs=list(self.job.inputs),
            output_url=self.job.output_url, system=self.ws.system, parts=parts,
            staging=self._staging(), minibatches_total=self.total,
        ))
        self.logs.event("output-committed", output=self.job.output_url, parts=len(parts))

    def _drop_stale_model_folders(self) -> None:
        """The model folders on this machine of this workspace's finished jobs (a runner
        killed before it ended its job left its folder): removed. One query for every 500
        folders (folders of other workspaces' jobs stay, and are not asked about one by one)."""
        others = [job_id for job_id in model_folder_jobs() if job_id != self.job.id]
        for start in range(0, len(others), 500):
            with self.ws.engine.connect() as conn:
                finished = conn.execute(select(jobs_table.c.id).where(
                    jobs_table.c.id.in_(others[start:start + 500]),
                    jobs_table.c.state.in_(db.FINISHED))).scalars().all()
            for job_id in finished:
                drop_model_folder(job_id)

    def _finish(self, state: str, reason: str | None) -> db.Job:
        telemetry.job_finished(state, reason)
        drop_model_folder(self.job.id)  # the job ended: its copy of the model is not needed
        if not self.ws.system.is_local:  # this machine's staging of a remote store's job
            _remove(self._staging())
        self._report(state, force=True)
        self.logs.event("job-finished", state=state, reason=reason,
                        items_succeeded=self.items_ok, items_failed=self.items_failed)
        self.logs.flush()
        return db.finish_job(self.ws.engine, self.job.id, state, reason, with_inputs=False)

    def _release(self) -> None:
        """Interrupted (Ctrl-C): leave the job resumable at once by another runner."""
        try:
            with self.ws.engine.begin() as conn:
                conn.execute(
                    update(jobs_table)
                    .where(jobs_table.c.id == self.job.id, jobs_table.c.runner == self.runner)
                    .values(heartbeat_at=None)
                )
            self.logs.event("runner-interrupted", runner=self.runner)
            self.logs.flush()
        except Exception:  # nosec B110  # best effort at exit
            pass


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
