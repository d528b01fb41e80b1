"""Frame-level progress: a long segment shows its frames as they are done, not at its end."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import batchscore.video.job as video_job
from batchscore.jobs.kinds import PartialProgress
from batchscore.paths import progress_file
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.storage import Store
from batchscore.video.job import stylize_job
from service.svc_helpers import TestClient


def test_partial_progress_is_throttled_and_cleared(tmp_path: Path) -> None:
    store = Store(tmp_path.as_uri(), "system")
    partial = PartialProgress(store, "jobs/j/logs", 3, 1, every=3600)
    path = progress_file("jobs/j/logs", 3, 1)
    partial.report(4)
    assert store.read_text(path) == '{"done": 4}'
    partial.report(8)  # within `every` of the last write: skipped
    assert store.read_text(path) == '{"done": 4}'
    partial.clear()
    assert not store.exists(path)
    partial.clear()  # nothing there: still fine


def test_unwritable_progress_never_fails_the_segment(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    partial = PartialProgress(Store(blocker.as_uri(), "system"), "logs", 0, 1, every=0)
    partial.report(1)  # the store's root is a file: ignored
    partial.clear()


class _Gated:
    """An identity network that, from its third batch on, waits for ``go`` to exist (up to a
    minute): the job's segment is then visibly half done until the test has seen it so."""

    def __init__(self, go: Path) -> None:
        self.go, self.calls = go, 0

    def network_size(self, width: int, height: int) -> None:
        return None  # full-size frames, as an identity network takes them

    def stylize(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls >= 3:
            deadline = time.monotonic() + 60
            while not self.go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return frames


def test_the_progress_callback_sees_frames_inside_a_running_segment(
    ws, clips, tmp_path, monkeypatch
) -> None:
    go = tmp_path / "go"
    monkeypatch.setattr(video_job, "model_from_spec", lambda spec: _Gated(go))  # workers fork
    seen: list[tuple[int, int]] = []
    api_views: list[dict] = []
    client = TestClient(create_app(ws, ServiceConfig(background=False)))
    client.headers["Authorization"] = f"Bearer {create_token(ws.engine, 'v', 'viewer')[1]}"

    def progress(snap) -> None:
        seen.append((snap.items_succeeded, snap.items_in_progress))
        if snap.items_in_progress and not go.exists():
            # the API (and so the dashboard) shows them too, once the runner wrote them
            view = client.get(f"/api/v1/jobs/{snap.job_id}").json()
            if view["items_in_progress"]:
                api_views.append(view)
                go.touch()

    job = stylize_job(ws, str(clips["long_gop"]), str(tmp_path / "out.mp4"), style=0,
                      workers=1, segment_frames=1000, batch_size=4, progress=progress)
    assert job.state == "succeeded" and job.items_succeeded == 90
    assert go.exists(), "no snapshot showed frames done inside the running segment"
    assert any(ok == 0 and 0 < inside < 90 for ok, inside in seen)
    assert api_views[0]["state"] == "running" and 0 < api_views[0]["items_in_progress"] < 90
    assert client.get(f"/api/v1/jobs/{job.id}").json()["items_in_progress"] == 0  # finished
    assert seen[-1] == (90, 0)  # finished: everything counted once, as succeeded
    assert not [p for p in ws.system.list(f"jobs/{job.id}") if "/progress/" in p]
