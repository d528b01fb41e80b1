"""Run slots: threads that take queued pipeline runs and execute them (each job's workers are
processes of the job engine). On start, runs that a dead service left behind are taken up
again: a run without a job is queued again, a run whose job is interrupted resumes it."""

from __future__ import annotations

import logging
import threading
import time

from ..jobs.control import get_job
from ..pipelines import execute_run
from ..state import runs
from ..state.jobs import runner_name
from ..workspace import Workspace

__all__ = ["RunSlots"]

log = logging.getLogger("batchscore.service")


class RunSlots:
    def __init__(self, ws: Workspace, slots: int = 2, poll: float = 0.5) -> None:
        self.ws, self.slots, self.poll = ws, max(1, slots), poll
        self.runner = runner_name()
        self.active: dict[str, str] = {}  # thread name -> run id
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.wake = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True,
                                          name=f"batchscore-slot-{i}") for i in range(self.slots)]

    def start(self) -> None:
        self.recover()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._halt.set()
        self.wake.set()

    @property
    def busy(self) -> int:
        return len(self.active)

    def recover(self) -> list[str]:
        """Queue again the runs that a service which is gone left running; returns their ids."""
        again = []
        for run in runs.running_runs(self.ws.engine):
            if run.runner == self.runner:
                continue
            if run.job_id is not None:
                job = get_job(self.ws, run.job_id)
                if not (job.finished or job.interrupted or job.state == "queued"):
                    continue  # another live service runs it
            runs.requeue_run(self.ws.engine, run.id)
            again.append(run.id)
            log.info("run %s: left running by %s; taken up again", run.id, run.runner)
        return again

    def _next(self) -> str | None:
        """Claim the oldest queued run for this slot; its id, or None when there is none."""
        with self._lock:
            for run_id in runs.queued_run_ids(self.ws.engine):
                if runs.claim_run(self.ws.engine, run_id, self.runner):
                    return run_id
        return None

    def _loop(self) -> None:
        name = threading.current_thread().name
        while not self._halt.is_set():
            try:
                run_id = self._next()
            except Exception as exc:  # the database is briefly unavailable
                log.warning("run slots: %s", exc)
                run_id = None
            if run_id is None:
                self.wake.wait(self.poll)
                self.wake.clear()
                continue
            self.active[name] = run_id
            started = time.time()
            try:
                run = execute_run(self.ws, run_id)
                log.info("run %s %s in %.1fs", run_id, run.state, time.time() - started)
            except Exception:
                log.exception("run %s: the slot failed", run_id)
            finally:
                self.active.pop(name, None)
