"""``python -m batchscore.pipelines RUN_ID``: claim a queued run and execute it to its end.

The detached runner that an endpoint's invocation starts outside a service
(:func:`batchscore.endpoints.start_runner`)."""

from __future__ import annotations

import gc
import sys

from ..workspace import open_workspace
from .lifecycle import execute_queued


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m batchscore.pipelines RUN_ID", file=sys.stderr)
        return 2
    run = execute_queued(open_workspace(), argv[0])
    if run is None:
        print(f"run {argv[0]} is not queued (another runner took it)", file=sys.stderr)
        return 0
    print(f"run {run.id} {run.state}" + (f": {run.reason}" if run.reason else ""))
    return 0 if run.state == "succeeded" else 1


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    finally:
        gc.freeze()  # no collection of every object at exit (batchscore.cli.main says why)
    sys.exit(code)
