"""Executors run mini-batches on workers. ``local`` is a process pool on this machine."""

from __future__ import annotations

from ...errors import SpecError
from .base import Completion, Executor, Outcome

__all__ = ["Completion", "Executor", "Outcome", "make_executor"]


def make_executor(kind: str) -> Executor:
    """The executor named ``kind``."""
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    raise SpecError(f"unknown executor {kind!r}; available: 'local'")
