"""The executor contract: what the runner needs from any pool of workers.

An executor starts workers that each call the script's ``init()`` once, runs submitted
mini-batches with a per-mini-batch timeout, and reports each attempt's outcome. A worker that
hangs past the timeout is killed and replaced; a worker that dies costs only the mini-batch it
was running. Retries, thresholds and outputs are the runner's business, so every executor
gives the same semantics.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..kinds import TaskResult, WorkerConfig

__all__ = ["Completion", "Executor", "Outcome"]


class Outcome(enum.Enum):
    OK = "ok"
    ERROR = "error"  # run() raised: retried
    TIMEOUT = "timeout"  # past retry_settings.timeout: the worker was replaced, retried
    DIED = "died"  # the worker process died: retried
    LOST = "lost"  # the pool broke before or around it (all workers died): re-run, not counted
    FATAL = "fatal"  # the script cannot work at all (init failed, contract broken): job fails


@dataclass(frozen=True)
class Completion:
    idx: int
    attempt: int
    outcome: Outcome
    result: TaskResult | None = None
    error: str | None = None
    worker: str | None = None


class Executor(ABC):
    """A pool of workers running mini-batches."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many mini-batches to keep submitted at once."""

    @abstractmethod
    def start(self, cfg: WorkerConfig, workers: int) -> None: ...

    @abstractmethod
    def submit(self, idx: int, attempt: int, items: list[Any], timeout: float) -> None: ...

    @property
    @abstractmethod
    def in_flight(self) -> int: ...

    @abstractmethod
    def wait(self, timeout: float) -> list[Completion]:
        """Completions that arrived within ``timeout`` seconds (possibly none)."""

    @abstractmethod
    def close(self) -> None:
        """Let workers finish (running the script's ``shutdown()``), then stop them."""

    def close_later(self, then: Callable[[], None] | None = None) -> None:
        """:meth:`close` without waiting for it where the executor can (its workers are
        stopped by a thread that the process waits for before it exits); else :meth:`close`.
        ``then`` is called once the workers have stopped (it removes their scratch folder)."""
        self.close()
        if then is not None:
            then()

    @abstractmethod
    def abort(self) -> None:
        """Stop at once, dropping what is running."""
