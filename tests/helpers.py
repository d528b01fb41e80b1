"""Small helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["pid_alive", "wait_for"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, every: float = 0.2,
             what: str | None = None) -> Any:
    """Poll ``predicate`` until it returns something true (returned); fail after ``timeout``
    seconds (a safety net, not a wait: the test waits for the event the predicate sees)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
