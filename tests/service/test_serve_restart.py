"""`batchscore serve` killed in the middle of a run: restarted, it finishes the run, and the
blob that started it starts no second run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
from svc_helpers import FAST, make_clip, wait_for

from batchscore.jobs.control import list_minibatches
from batchscore.pipelines import list_runs
from batchscore.triggers import create_trigger
from servers import free_port


def serve(ws, port, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "batchscore", "serve", "-w", str(ws.settings.root),
         "--port", str(port), "--scan-interval", "0.2", "--run-slots", "1"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


SEGMENTS = 6  # of the 24 frames


def test_a_killed_service_resumes_its_run_and_starts_nothing_twice(ws):
    create_trigger(ws, "videos", "video-style", prefix="incoming/", pattern="*.mp4",
                   output="outgoing/", params={**FAST, "segment_frames": 24 // SEGMENTS},
                   settle_seconds=0)
    make_clip(ws.data.local_path("incoming", "clip.mp4"))
    # The first service dies (SIGKILL) right after the first save of finished segments: the
    # runner saves the attempts that finish close together in one transaction (group
    # commit), so that save may hold more than one, as many as finished in its window (on a
    # fast machine, every one: then the second service has only the stitching left)
    first = serve(ws, free_port(), BATCHSCORE_CRASH_AT="attempt-recorded")
    try:
        assert first.wait(timeout=60) == -signal.SIGKILL, first.stderr.read().decode()
    finally:
        first.kill()
        first.stderr.close()
    [run] = list_runs(ws.engine)
    assert run.state == "running" and run.job_id
    assert [m.state for m in list_minibatches(ws, run.job_id)].count("done") >= 1
    assert not ws.data.local_path("outgoing", run.id, "clip.mp4").exists()

    port = free_port()
    second = serve(ws, port)
    try:
        def finished():
            try:
                token = (ws.settings.root / "service" / "admin.token").read_text().strip()
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs/{run.id}", timeout=5,
                              headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError:
                return None
            if r.status_code == 401:  # the token file is the first service's until the
                return None  # second one has written its own: read it again next time
            assert r.status_code == 200, r.text
            return r.json() if r.json()["state"] in ("succeeded", "failed") else None

        done = wait_for(finished, timeout=60)
        assert done["state"] == "succeeded", done
        assert done["job"]["items_succeeded"] == 24
        mbs = list_minibatches(ws, run.job_id)
        assert [m.attempts for m in mbs] == [1] * SEGMENTS  # none run again once finished
        assert ws.data.local_path("outgoing", run.id, "clip.mp4").is_file()
        assert len(list_runs(ws.engine)) == 1  # the blob started one run, across restarts
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
        second.stderr.close()
