"""The local executor: a pebble process pool on this machine."""

from __future__ import annotations

import multiprocessing
import socket
import traceback
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pebble import ProcessExpired, ProcessPool

from ..worker import ContractError, InitError, WorkerConfig, run_task, worker_init
from .base import Completion, Executor, Outcome

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Worker processes on this machine; ``max_concurrency_per_instance`` sets their number."""

    def __init__(self) -> None:
        self._pool: ProcessPool | None = None
        self._futures: dict[Future[Any], tuple[int, int, float]] = {}
        self._lost: list[Completion] = []  # in flight on a pool that was replaced
        self._workers = 1

    @property
    def capacity(self) -> int:
        return self._workers * 2

    @property
    def in_flight(self) -> int:
        return len(self._futures) + len(self._lost)

    def start(self, cfg: WorkerConfig, workers: int) -> None:
        self._workers = workers
        self._cfg = cfg
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=self._workers,
            initializer=worker_init,
            initargs=(self._cfg,),
            context=multiprocessing.get_context("fork"),
        )

    def submit(self, idx: int, attempt: int, items: list[Any], timeout: float) -> None:
        assert self._pool is not None, "start() first"
        try:
            future = self._pool.schedule(run_task, args=(idx, attempt, items), timeout=timeout)
        except RuntimeError:
            # pebble gives up on the whole pool when a worker dies while no task is running
            # on it (between tasks, or all at once): start a new pool and go on. What was in
            # flight on the old one is lost (re-run uncounted), whether or not pebble said so.
            self._replace_pool()
            future = self._pool.schedule(run_task, args=(idx, attempt, items), timeout=timeout)
        self._futures[future] = (idx, attempt, timeout)

    def _replace_pool(self) -> None:
        assert self._pool is not None
        old, self._futures = self._futures, {}
        for future, (idx, attempt, _) in old.items():
            future.cancel()
            self._lost.append(Completion(idx, attempt, Outcome.LOST,
                                         error="the worker pool broke (its workers died)"))
        self._pool.stop()
        self._pool = self._new_pool()

    def wait(self, timeout: float) -> list[Completion]:
        lost, self._lost = self._lost, []
        if lost or not self._futures:
            return lost
        done, _ = futures_wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        return [self._completion(f) for f in done]

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

    def abort(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=30)
            self._pool = None
        self._futures.clear()
