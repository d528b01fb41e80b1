"""Job kinds: what differs between an entry-script job and a built-in one (video, tabular).

The engine (planning records, runner, executors, retries, logs, resume) is the same for every
kind; a kind says how inputs are checked and planned into mini-batches, what a worker does
with a mini-batch (its :class:`Scorer`), and how the parts become the final output. Kinds are
found by name, so ``jobs`` does not import ``video``: ``video`` plugs in through this contract.

The contract's types live here too: what a worker is given (:class:`WorkerConfig`), what a
scorer returns for a mini-batch (:class:`TaskResult`), how it reports progress inside a long
mini-batch (:class:`PartialProgress`) and how it says that the user's code broke the contract
(:class:`ContractError`). Where its files go is :mod:`batchscore.paths`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import SpecError
from ..paths import progress_file
from ..storage import Store
from .plan import PlannedBatch
from .spec import JobSpec

__all__ = [
    "CommitContext",
    "ContractError",
    "JobKind",
    "PartialProgress",
    "Scorer",
    "TaskResult",
    "WorkerConfig",
    "get_kind",
    "worker_name",
]

_REGISTRY = {
    "script": "batchscore.jobs.script:ScriptKind",
    "video": "batchscore.video.job:VideoKind",
    "tabular": "batchscore.tabular.job:TabularKind",
}


class ContractError(Exception):
    """The scorer broke its contract (a wrong return type): the job cannot go on. Never shown
    as it is: the executor fails the job with its message."""


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker process of a job is given."""

    job_id: str
    spec: JobSpec
    inputs: tuple[str, ...]
    system_url: str
    log_prefix: str  # relative path in the system store: paths.job_logs(job_id)
    staging_dir: str  # local folder given as AZUREML_BI_OUTPUT_PATH
    parts_prefix: str  # paths.job_parts(job_id); a part goes to paths.part_path(...)
    # A local folder of this run for the workers' own files (downloaded inputs, models,
    # code): the runner removes it once the workers have stopped, and a later run removes a
    # killed run's. A worker makes its own folder in it (tempfile.mkdtemp(dir=...)).
    scratch_dir: str


@dataclass(frozen=True)
class TaskResult:
    """What a scorer returns for one attempt of one mini-batch."""

    idx: int
    attempt: int
    worker: str  # worker_name()
    started_at: float
    finished_at: float
    returned: int
    part: str | None
    # Why the items not returned failed (a kind that rejects some rows says which and why);
    # None: the runner says that run() returned fewer items than the mini-batch had.
    error: str | None = None


def worker_name() -> str:
    """This worker process, as attempts and logs name it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PartialProgress:
    """Items done so far in a running mini-batch, for the runner's progress (throttled).

    A long mini-batch (a video segment of hundreds of frames) otherwise shows no progress
    until it ends. ``report(done)`` writes ``{"done": n}`` to
    :func:`batchscore.paths.progress_file` at most every ``every`` seconds; the runner reads
    the files of the attempts it has running. Writing is best effort: progress never fails a
    mini-batch.
    """

    def __init__(self, store: Store, log_prefix: str, idx: int, attempt: int,
                 every: float = 0.5) -> None:
        self.store, self.every = store, every
        self.path = progress_file(log_prefix, idx, attempt)
        # None: never written. The monotonic clock counts from an arbitrary point (boot on
        # Linux), so a start of 0.0 would drop the first report on a machine up < ``every`` s.
        self._last: float | None = None

    def report(self, done: int) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every:
            return
        self._last = now
        with contextlib.suppress(Exception):
            self.store.write_text(self.path, f'{{"done": {int(done)}}}')

    def clear(self) -> None:
        with contextlib.suppress(Exception):
            self.store.remove(self.path)


class Scorer(Protocol):
    """Made once per worker process; scores many mini-batches."""

    def run(self, idx: int, attempt: int, items: list[Any]) -> TaskResult: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True)
class CommitContext:
    job_id: str
    spec: JobSpec
    inputs: list[str]
    output_url: str
    system: Store
    # system-store paths of the finished mini-batches' parts, in order: a collection that
    # reads them from the state database each time it is iterated (len() and iteration)
    parts: Collection[str]
    staging: Path
    minibatches_total: int


class JobKind(ABC):
    name: ClassVar[str]
    # whether workers (``WorkerConfig.inputs``) or the commit (``CommitContext.inputs``) read
    # the job's list of inputs; a kind whose mini-batches carry what they read says False,
    # and its runner never loads that list (a million URLs)
    uses_inputs: ClassVar[bool] = True
    # whether the commit reads what the workers' ``shutdown()`` writes (an entry script may
    # write its last rows to ``AZUREML_BI_OUTPUT_PATH`` there): such a kind's workers are
    # stopped before the commit. A kind that says False commits as soon as every mini-batch
    # has run, and its workers are stopped after, without the job waiting for them (a
    # process still waits for them before it exits).
    commit_reads_shutdown: ClassVar[bool] = True

    @abstractmethod
    def validate(self, spec: JobSpec) -> None:
        """Check the spec before anything is recorded (raise a UsageError subclass)."""

    @abstractmethod
    def expand_inputs(self, spec: JobSpec, inputs: Sequence[str]) -> list[str]: ...

    @abstractmethod
    def check_output(self, spec: JobSpec, output_url: str, overwrite: bool) -> None: ...

    @abstractmethod
    def plan(self, spec: JobSpec, urls: list[str], system: Store) -> Iterable[PlannedBatch]:
        """Split the inputs into mini-batches, in order (``system``: where a kind may keep
        what it must read again identically, such as the snapshot of a SQL query's result).
        A generator is consumed once, while the plan is written: it must raise any error
        about the spec or the inputs before it yields its first mini-batch, or at once."""

    def stage(self, job_id: str, spec: JobSpec, system: Store) -> None:
        """Put what workers need into the system store before they start (idempotent)."""
        return None

    @abstractmethod
    def make_scorer(self, cfg: WorkerConfig) -> Scorer:
        """Called once in each worker process (load the model here)."""

    @abstractmethod
    def commit(self, ctx: CommitContext) -> None:
        """Assemble the parts into the output, never leaving a partial output in place."""


def get_kind(name: str) -> JobKind:
    target = _REGISTRY.get(name)
    if target is None:
        raise SpecError(f"unknown job kind {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    module, _, attr = target.partition(":")
    kind: JobKind = getattr(importlib.import_module(module), attr)()
    return kind
