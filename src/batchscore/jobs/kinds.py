"""Job kinds: what differs between an entry-script job and a built-in one (video, tabular).

The engine (planning records, runner, executors, retries, logs, resume) is the same for every
kind; a kind says how inputs are checked and planned into mini-batches, what a worker does
with a mini-batch (its :class:`Scorer`), and how the parts become the final output. Kinds are
found by name, so ``jobs`` does not import ``video``: ``video`` plugs in through this contract.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import SpecError
from ..storage import Store
from .plan import PlannedBatch
from .spec import JobSpec
from .worker import TaskResult, WorkerConfig

__all__ = ["CommitContext", "JobKind", "Scorer", "get_kind"]

_REGISTRY = {
    "script": "batchscore.jobs.script:ScriptKind",
    "video": "batchscore.video.job:VideoKind",
    "tabular": "batchscore.tabular.job:TabularKind",
}


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
