"""A trigger loop killed (SIGKILL) inside the transaction that records a blob's run, or just
after it: once restarted, the blob has started exactly one run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from batchscore.pipelines import list_runs
from batchscore.triggers import create_trigger
from batchscore.triggers.watch import ScanState, scan_storage
from service.svc_helpers import make_clip

SCAN = textwrap.dedent("""
    from batchscore.triggers import get_trigger
    from batchscore.triggers.watch import ScanState, scan_storage
    from batchscore.workspace import open_workspace
    ws = open_workspace()
    scan_storage(ws, get_trigger(ws.engine, "videos"), ScanState())
""")


@pytest.mark.parametrize("point", ["trigger-run-inserting", "trigger-run-recorded"])
def test_killed_while_recording_a_run_the_blob_starts_exactly_one(ws, point):
    trigger = create_trigger(ws, "videos", "video-style", prefix="incoming/",
                             pattern="*.mp4", output="outgoing/", settle_seconds=0)
    make_clip(ws.data.local_path("incoming", "clip.mp4"))
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root),
           "BATCHSCORE_CRASH_AT": point}
    done = subprocess.run([sys.executable, "-c", SCAN], env=env, capture_output=True)
    assert done.returncode == -9, done.stderr  # it really died there
    recorded = list_runs(ws.engine, trigger_id=trigger.id)
    assert len(recorded) == (0 if point == "trigger-run-inserting" else 1)
    state = ScanState()
    again = scan_storage(ws, trigger, state) + scan_storage(ws, trigger, state)
    runs = list_runs(ws.engine, trigger_id=trigger.id)
    assert len(runs) == 1 and runs[0].params["input"] == "incoming/clip.mp4"
    assert len(again) == (1 if point == "trigger-run-inserting" else 0)
