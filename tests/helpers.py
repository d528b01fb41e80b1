"""Small helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["left_in_tmp", "pid_alive", "wait_for"]


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


def left_in_tmp(tmp_dir: Path) -> list[str]:
    """What jobs left in the temporary folder ``tmp_dir`` (the ``machine_tmp`` fixture's),
    once their workers have stopped (a finished job's pool is stopped by a thread: waited
    for). The user's machine folder (``batchscore-<uid>``, ``workspace.machine_dir``) may
    keep empty folders."""
    wait_for(lambda: not any(t.name == "batchscore-pool-close" for t in threading.enumerate()),
             what="the jobs' workers to stop")
    return sorted({str(p) for p in tmp_dir.rglob("*") if not p.is_dir()}
                  | {str(p) for p in tmp_dir.iterdir() if p.name != f"batchscore-{os.getuid()}"})
