"""Named crash points, for tests that kill the runner at each and check exactly-once results.

``BATCHSCORE_CRASH_AT=name`` (or ``name:N`` for the N-th time the point is reached) makes the
process kill itself with SIGKILL there, as ``kill -9`` would.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["POINTS", "crash_point"]

POINTS = (
    "job-created",  # job and plan recorded, nothing run
    "claimed",  # runner holds the lease
    "attempt-recorded",  # a completed attempt is committed to the database
    "before-commit",  # every mini-batch finished, output not yet assembled
    "marker-written",  # output marker written, output file not yet renamed into place
    "output-committed",  # output complete, job not yet marked succeeded
)
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    wanted = os.environ.get("BATCHSCORE_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
