"""The local executor: a pebble process pool on this machine.

Workers of a job run from a thread other than the main one (the service's run slots) are
not forked from that process, so that no lock another thread of the service held at that
moment (SQLAlchemy's pool, a handler's) is inherited locked: multiprocessing's fork server
(a single-threaded process of its own, started once) forks them. It imports
:mod:`.preload` once, when it starts, so that a job's workers do not each import
batchscore, pandas and pyarrow again (a spawned worker did: seconds per job), then sizes its
native thread pools (:mod:`.server_threads`). The command line and detached runners (jobs on
the main thread) fork, each worker with the runner's thread pools sized for it
(:class:`..threads.ForkSizing`). ``$BATCHSCORE_WORKER_START``
(fork, spawn, forkserver) overrides the choice (:func:`start_method`). A pool whose
workers start no task within :func:`init_seconds` (a hung ``init()``) is killed and
replaced, and its mini-batches count an attempt (a second time in a row fails the job)."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from multiprocessing.context import BaseContext, ForkProcess
from multiprocessing.process import BaseProcess
from typing import Any

from pebble import ProcessExpired, ProcessPool

from ...errors import UsageError
from ..kinds import ContractError, WorkerConfig
from ..threads import ForkSizing, fork_sizing
from ..worker import InitError, load_readers, run_task, worker_init
from .base import Completion, Executor, Outcome

__all__ = ["LocalExecutor", "check_settings", "init_seconds", "stall_seconds", "start_method",
           "start_worker_server"]

MAX_STALLS = 3

# what the fork server imports, in order (by name: not here)
_PRELOAD = ["batchscore.jobs.executors.preload", "batchscore.jobs.executors.server_threads"]
_METHODS = ("fork", "spawn", "forkserver")


class _SizedFork(ForkProcess):
    """A worker forked while this process's native thread pools hold the worker's share of
    the CPUs (:class:`..threads.ForkSizing`)."""

    sizing: ForkSizing

    def start(self) -> None:
        with self.sizing.forking():
            super().start()


class _CountedContext:
    """A pool's multiprocessing context that keeps the worker processes started through it
    (pebble starts and replaces them), so that workers which exit as they start are seen:
    pebble replaces them without end and says nothing. ``sizing``: a fork context's, the
    thread pools its workers inherit."""

    def __init__(self, context: BaseContext, sizing: ForkSizing | None = None) -> None:
        self._context = context
        self._sizing = sizing
        self._lock = threading.Lock()  # pebble's manager thread starts them, the runner reads
        self._live: list[BaseProcess] = []
        self._exits: list[int] = []  # exit codes of those that ended

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def Process(self, *args: Any, **kwargs: Any) -> BaseProcess:  # multiprocessing's name
        process: BaseProcess
        if self._sizing is not None:
            process = _SizedFork(*args, **kwargs)
            process.sizing = self._sizing
        else:
            process = self._context.Process(*args, **kwargs)  # type: ignore[attr-defined]
        self.ended()  # the ones that ended are let go (their pipes with them), counted
        with self._lock:
            self._live.append(process)
        return process

    def ended(self) -> list[int]:
        """The exit codes of the processes that ended (a negative one: killed by a signal)."""
        with self._lock:
            for process in list(self._live):
                if process.pid is not None and not process.is_alive():
                    self._live.remove(process)
                    self._exits.append(-1 if process.exitcode is None else process.exitcode)
            return list(self._exits)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _main_imported_by_workers() -> str | None:
    """The main module that a spawned or fork-server worker imports before it runs anything
    (multiprocessing's rule), or None (``python -m package``, an interactive session)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return None if name == "__main__" or name.endswith(".__main__") else name
    return getattr(main, "__file__", None)


def _seconds_setting(name: str) -> float | None:
    """The number of seconds in ``$name`` (unset or empty: None); anything else than a
    finite number above 0 is refused, naming the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"${name}={value!r}: expected a number of seconds above 0")
    return seconds


def stall_seconds(timeout: float, started_any: bool) -> float:
    """How long a pool may start no task while tasks wait before it counts as stalled:
    ``$BATCHSCORE_STALL_SECONDS``, else the longer of 120 s and twice the task timeout, once
    the pool has started a task (before that its workers may still be in a slow init(): 30
    minutes)."""
    chosen = _seconds_setting("BATCHSCORE_STALL_SECONDS")
    if chosen is not None:
        return chosen
    return max(120.0, 2 * timeout) if started_any else 1800.0


def init_seconds() -> float:
    """How long a new pool's workers may take to start a first task (their ``init()``):
    ``$BATCHSCORE_INIT_TIMEOUT``, else 600 s. (When the stall watchdog's limit is shorter,
    it acts first: the pool is replaced without counting an attempt.)"""
    chosen = _seconds_setting("BATCHSCORE_INIT_TIMEOUT")
    return 600.0 if chosen is None else chosen


def check_settings() -> None:
    """Refuse a bad ``$BATCHSCORE_WORKER_START``, ``$BATCHSCORE_STALL_SECONDS`` or
    ``$BATCHSCORE_INIT_TIMEOUT`` (:class:`UsageError` naming it): called as a job's workers
    start and as the service starts, not first when a job reads it."""
    _chosen()
    _seconds_setting("BATCHSCORE_STALL_SECONDS")
    init_seconds()


def worker_context(method: str) -> BaseContext:
    """The multiprocessing context of ``method``; for ``forkserver``, one whose server
    imports :mod:`.preload` (said before the server starts: it starts once a process)."""
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(_PRELOAD)
    return context


def start_worker_server() -> None:
    """Start the fork server now, if jobs run from threads will use it (the service calls
    this as it starts): it imports :mod:`.preload` in the background, so the first
    job does not wait for it. It ends when this process does."""
    if (_chosen() or "forkserver") == "forkserver":
        worker_context("forkserver")
        forkserver.ensure_running()


def _chosen() -> str | None:
    """``$BATCHSCORE_WORKER_START`` (unset or empty: None); a value not among fork, spawn
    and forkserver is refused, naming the variable."""
    chosen = os.environ.get("BATCHSCORE_WORKER_START", "").strip()
    if not chosen:
        return None
    if chosen not in _METHODS:
        raise UsageError(f"$BATCHSCORE_WORKER_START={chosen!r}: expected one of "
                         f"{', '.join(_METHODS)}")
    return chosen


def start_method() -> str:
    """``forkserver`` when the job runs on a thread other than the main one (the service's
    run slots, or any program that runs jobs from threads: a fork of this process would copy
    the locks its other threads hold at that moment), else ``fork`` (the command line, a
    detached runner); ``$BATCHSCORE_WORKER_START`` (fork, spawn, forkserver) chooses
    otherwise."""
    main = threading.current_thread() is threading.main_thread()
    return _chosen() or ("fork" if main else "forkserver")


def _ran(future: Future[Any]) -> bool:
    """A finished task that a worker took (not one given up with its broken pool)."""
    return not future.cancelled() and not isinstance(future.exception(), BrokenProcessPool)


class LocalExecutor(Executor):
    """Worker processes on this machine; ``max_concurrency_per_instance`` sets their number."""

    def __init__(self) -> None:
        self._pool: ProcessPool | None = None
        self._futures: dict[Future[Any], tuple[int, int, float]] = {}
        self._lost: list[Completion] = []  # in flight on a pool that was replaced
        self._workers = 1
        self._progress_at = time.monotonic()  # a task last started or finished
        self._started_any = False  # the current pool has started a task
        self._stalls = 0
        self._init_timeouts = 0  # pools in a row whose workers never started a task
        self._launches: _CountedContext | None = None  # the current pool's processes
        self._method = "fork"  # the current pool's start method
        self._exits: list[int] = []  # of workers of earlier pools, since a task last started

    @property
    def capacity(self) -> int:
        return self._workers * 2

    @property
    def in_flight(self) -> int:
        return len(self._futures) + len(self._lost)

    def start(self, cfg: WorkerConfig, workers: int) -> None:
        check_settings()  # before any worker starts, not while the job runs
        self._exits = []
        self._workers = workers
        self._cfg = cfg
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPool:
        method = start_method()
        # a fork server's child has the server's environment: it gets this process's
        environ = dict(os.environ) if method == "forkserver" else None
        sizing = None
        if method == "fork":
            load_readers()  # inherited by the workers, not imported by each
            # after the readers: their libraries are loaded (and found) by then
            sizing = fork_sizing(self._workers,
                                 {**os.environ, **self._cfg.spec.environment_variables})
        self._method = method
        self._launches = _CountedContext(worker_context(method), sizing)
        return ProcessPool(
            max_workers=self._workers,
            initializer=worker_init,
            initargs=(self._cfg, environ),
            context=self._launches,  # type: ignore[arg-type]  # a BaseContext's stand-in
        )

    def submit(self, idx: int, attempt: int, items: list[Any], timeout: float) -> None:
        assert self._pool is not None, "start() first"
        if not self._futures:
            self._progress_at = time.monotonic()
        try:
            future = self._pool.schedule(run_task, args=(idx, attempt, items), timeout=timeout)
        except RuntimeError:
            # pebble gives up on the whole pool when a worker dies while no task is running
            # on it (between tasks, or all at once): start a new pool and go on. What was in
            # flight on the old one is lost (re-run uncounted), whether or not pebble said so.
            self._replace_pool()
            future = self._pool.schedule(run_task, args=(idx, attempt, items), timeout=timeout)
        self._futures[future] = (idx, attempt, timeout)

    def _replace_pool(self, why: str = "the worker pool broke (its workers died)") -> None:
        assert self._pool is not None
        old, self._futures = self._futures, {}
        for future, (idx, attempt, _) in old.items():
            future.cancel()
            self._lost.append(Completion(idx, attempt, Outcome.LOST, error=why))
        self._next_pool()
        self._progress_at = time.monotonic()
        self._started_any = False

    def _next_pool(self) -> None:
        """Stop the pool and start another; what its workers' exits were is kept while no
        task has started (read before the stop: the workers it stops are not counted)."""
        assert self._pool is not None and self._launches is not None
        if not self._started_any:
            self._exits += self._launches.ended()
        _retire(self._pool)
        self._pool = self._new_pool()

    def wait(self, timeout: float) -> list[Completion]:
        lost, self._lost = self._lost, []
        failed = self._exit_at_start(lost)
        if failed:
            return failed
        if lost or not self._futures:
            return lost
        done, _ = futures_wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        now = time.monotonic()
        if any(f.running() for f in self._futures) or any(map(_ran, done)):
            self._progress_at = now
            self._started_any = True
            self._init_timeouts = 0
            self._exits = []
            if done:
                self._stalls = 0
        elif not done:  # (workers ending as they start: seen at the next wait's start)
            stalled = self._stalled(now)
            if stalled:
                return stalled
        return [self._completion(f) for f in done]

    def _exit_at_start(self, lost: list[Completion]) -> list[Completion]:
        """Until a task starts, workers should not end at all: once more of them have ended
        than the job has workers, plus one (across the pools started meanwhile: pebble gives
        up a pool whose workers all ended, and a new one is started), they end as they
        start (an ``init()`` that exits or crashes, a worker killed for memory as it loads
        the model, a main module that is not guarded), and would be replaced without end.
        The mini-batches waiting (and ``lost``, from pools given up) fail the job (FATAL),
        with the exit codes."""
        if self._started_any or self._launches is None:
            return []
        exits = self._exits + self._launches.ended()
        if len(exits) <= self._workers + 1:
            return []
        codes = ", ".join(sorted({_exit_text(code) for code in exits}))
        error = (f"the worker processes ended as they started, {len(exits)} times before "
                 f"any took a mini-batch ({codes}); their errors are in the job's worker "
                 "logs, or on this process's stderr when they came before the logs opened")
        main = _main_imported_by_workers() if self._method != "fork" else None
        if main is not None:
            error += (f". Each worker ({self._method}) imports this program's main module "
                      f"{main!r} first: its code must run under "
                      "`if __name__ == \"__main__\":`")
        out = self._give_up_waiting(Outcome.FATAL, error)
        self._exits = []
        return out + [Completion(c.idx, c.attempt, Outcome.FATAL, error=error) for c in lost]

    def _give_up_waiting(self, outcome: Outcome, error: str) -> list[Completion]:
        """The tasks waiting end with ``outcome`` and ``error``; the pool is replaced."""
        out = [Completion(idx, attempt, outcome, error=error)
               for idx, attempt, _ in self._futures.values()]
        for future in self._futures:
            future.cancel()
        self._futures = {}
        self._next_pool()
        self._progress_at = time.monotonic()
        return out

    def _stalled(self, now: float) -> list[Completion]:
        """A watchdog: tasks wait, none runs, and none started or finished for a long time.

        A worker killed while it held the pool's channel lock leaves the others unable to
        take tasks, and per-task timeouts never fire for tasks that never started. The pool
        is replaced and its tasks re-run uncounted; after MAX_STALLS in a row (a worker
        init() that never ends) the tasks fail for good."""
        limit = stall_seconds(max(t for _, _, t in self._futures.values()), self._started_any)
        if not self._started_any and init_seconds() < limit:
            return self._init_timeout(now)
        if now - self._progress_at < limit:
            return []
        self._stalls += 1
        if self._stalls > MAX_STALLS:
            out = [Completion(idx, attempt, Outcome.FATAL, error=(
                f"the worker pool started no task for {limit:.0f}s, {MAX_STALLS + 1} times "
                "in a row (a worker's init() does not finish?)"))
                for idx, attempt, _ in self._futures.values()]
            self._futures.clear()
            return out
        self._replace_pool(f"the worker pool started no task for {limit:.0f}s (stalled); "
                           "replaced")
        lost, self._lost = self._lost, []
        return lost

    def _init_timeout(self, now: float) -> list[Completion]:
        """The pool's workers started no task within :func:`init_seconds`: they are killed
        and replaced, and the mini-batches waiting on them count an attempt (TIMEOUT, so
        they are retried); the second time in a row they fail the job (FATAL)."""
        limit = init_seconds()
        if now - self._progress_at < limit:
            return []
        self._init_timeouts += 1
        outcome = Outcome.FATAL if self._init_timeouts > 1 else Outcome.TIMEOUT
        error = (f"the workers' start-up (the scoring code's init()) did not finish within "
                 f"{limit:g}s; they were killed and replaced"
                 + (f" ({self._init_timeouts} times in a row)" if self._init_timeouts > 1
                    else ""))
        return self._give_up_waiting(outcome, error)

    def _completion(self, future: Future[Any]) -> Completion:
        idx, attempt, timeout = self._futures.pop(future)
        try:
            return Completion(idx, attempt, Outcome.OK, result=future.result())
        except FuturesTimeout:
            return Completion(
                idx, attempt, Outcome.TIMEOUT,
                error=f"run() did not finish within retry_settings.timeout={timeout:g}s; "
                "the worker was killed and replaced",
            )
        except ProcessExpired as exc:
            return Completion(
                idx, attempt, Outcome.DIED,
                error=f"the worker process died while running this mini-batch "
                f"(exit code {exc.exitcode})", worker=f"{socket.gethostname()}:{exc.pid}",
            )
        except BrokenProcessPool:
            return Completion(idx, attempt, Outcome.LOST,
                              error="the worker pool broke (its workers died); run again")
        except InitError as exc:
            return Completion(idx, attempt, Outcome.FATAL,
                              error=f"loading the scoring script failed:\n{exc}",
                              worker=getattr(exc, "batchscore_worker", None))
        except ContractError as exc:
            return Completion(idx, attempt, Outcome.FATAL, error=str(exc),
                              worker=getattr(exc, "batchscore_worker", None))
        except BaseException as exc:  # run() may raise anything
            remote = getattr(exc, "traceback", None)
            text = remote or "".join(traceback.format_exception(exc))
            return Completion(idx, attempt, Outcome.ERROR, error=text,
                              worker=getattr(exc, "batchscore_worker", None))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join(timeout=30)
            self._pool = None
        self._futures.clear()

    def close_later(self, then: Callable[[], None] | None = None) -> None:
        """Every mini-batch has run: the workers are stopped by a thread (pebble's own stop
        waits up to 0.1 s for its manager thread's next round), which calls ``then`` after.
        The thread is not a daemon: the interpreter waits for it before it exits, so a
        command leaves no worker (and no scratch folder) behind."""
        pool, self._pool = self._pool, None
        self._futures.clear()
        if pool is None:
            if then is not None:
                then()
            return
        pool.close()
        threading.Thread(target=_join_pool, args=(pool, then), name="batchscore-pool-close",
                         daemon=False).start()

    def abort(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=30)
            self._pool = None
        self._futures.clear()


def _retire(pool: ProcessPool) -> None:
    """Stop ``pool`` for good: its workers (a hung ``init()``'s too) and its threads, which
    pebble stops in ``join()`` (``stop()`` alone leaves both), on a thread of their own."""
    pool.stop()
    threading.Thread(target=_join_pool, args=(pool,), name="batchscore-pool-stop",
                     daemon=False).start()


def _join_pool(pool: ProcessPool, then: Callable[[], None] | None = None) -> None:
    try:
        pool.join(timeout=30)
    except TimeoutError:  # a worker that does not end: stopped
        pool.stop()
        pool.join(timeout=30)
    finally:
        if then is not None:
            then()
