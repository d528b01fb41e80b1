"""Executors run mini-batches on workers: ``local`` (a process pool on this machine) or
``ray`` (Ray actors, on this machine or a Ray cluster)."""

from __future__ import annotations

from ...errors import SpecError
from .base import Completion, Executor, Outcome

__all__ = ["EXECUTORS", "Completion", "Executor", "Outcome", "make_executor"]

EXECUTORS = ("local", "ray")


def make_executor(kind: str, *, ray_address: str | None = None) -> Executor:
    """The executor named ``kind``; ``ray_address`` is the Ray cluster to join (None: local)."""
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(ray_address)
    raise SpecError(f"unknown executor {kind!r}; available: {', '.join(map(repr, EXECUTORS))}")
