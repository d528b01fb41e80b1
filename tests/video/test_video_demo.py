"""`make demo` (examples/demo.py): its settings keep the bunny recognisable, and it saves and
prints a still beside the video."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from batchscore.models import model_from_spec
from batchscore.video.quality import content_kept, read_frames

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def _demo():
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_settings_keep_the_bunny_recognisable(bbb):
    """Issue 13: at least 0.30 on the gradient-magnitude correlation at frame 60, both
    scaled to 640 px wide (the quality report's content kept)."""
    demo = _demo()
    frame = read_frames(bbb, [60])[60]
    model = model_from_spec({"kind": "multistyle", "style": demo.STYLE,
                             "max_size": int(demo.MAX_SIZE)})
    assert content_kept(frame, model.stylize(frame[None])[0]) >= 0.30


def test_demo_prints_the_video_the_still_and_the_sheet(bbb, tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(out), "--max-size", "64", "--workers", "1"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"},
    )
    assert run.returncode == 0, run.stderr
    still = out / "bigbuckbunny-styled.still.png"
    assert "still (frame 60, input | styled, content kept" in run.stdout
    assert str(still) in run.stdout and f"{out / 'bigbuckbunny-styled.mp4'}.contact.png" in (
        run.stdout)
    with Image.open(still) as picture:
        assert picture.size == (1280, 360)
