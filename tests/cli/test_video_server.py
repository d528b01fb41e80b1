"""`batchscore video stylize --server URL`: upload, restyle in the service, download."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from batchscore.video.probe import probe
from service.svc_helpers import make_clip


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "batchscore", *args], capture_output=True,
                          text=True, env={**env, "BATCHSCORE_WORKSPACE": "/nonexistent"})


def test_stylize_through_the_service(service: str, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "styled.mp4"
    done = cli("video", "stylize", str(clip), "-o", str(out), "--style", "3", "--max-size",
               "64", "--workers", "1", "--segment-frames", "12", "--server", service,
               "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "output:" in done.stdout
    assert "quality: content kept" in done.stdout  # the run's report, fetched beside it
    assert Path(f"{out}.quality.json").is_file() and Path(f"{out}.contact.png").is_file()
    source, styled = probe(str(clip)), probe(str(out))
    assert styled.frame_pts == source.frame_pts
    assert len(styled.audio) == len(source.audio)
    again = cli("video", "stylize", str(clip), "-o", str(out), "--server", service)
    assert again.returncode == 2 and "exists" in again.stderr


def test_local_only_options_are_refused_with_server(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    done = cli("video", "stylize", str(clip), "-o", str(tmp_path / "o.mp4"), "--style-image",
               str(clip), "--server", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "--style-image cannot be used with --server" in done.stderr
    assert "Traceback" not in done.stderr
    gone = cli("video", "stylize", str(clip), "-o", str(tmp_path / "o.mp4"), "--server",
               "http://127.0.0.1:9")
    assert gone.returncode == 2 and "cannot reach the service" in gone.stderr
