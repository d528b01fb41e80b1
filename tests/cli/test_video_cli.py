"""`batchscore video stylize` encoder options: --crf and --preset reach the encoder, and bad
values are refused with one clear line before any work starts."""

from __future__ import annotations

from pathlib import Path

from cli.cli_checks import Invoke, assert_one_error
from service.svc_helpers import make_clip


def test_a_bad_preset_is_refused_before_anything_runs(invoke: Invoke, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    result = invoke("video", "stylize", str(clip), "-o", str(out), "--preset", "turbo",
                    "--no-progress")
    assert_one_error(result, "x264 preset must be one of", "'turbo'")
    assert not out.exists()


def test_preset_and_crf_reach_the_job(invoke: Invoke, ws, tmp_path: Path) -> None:
    from batchscore.jobs import list_jobs

    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    result = invoke("video", "stylize", str(clip), "-o", str(out), "--style", "1",
                    "--max-size", "32", "--workers", "1", "--preset", "ultrafast", "--crf", "30",
                    "--no-progress")
    assert result.exit_code == 0, result.output
    (job,) = list_jobs(ws)
    encoder = job.spec["options"]["encoder"]
    assert (encoder["preset"], encoder["crf"]) == ("ultrafast", 30)
    assert out.stat().st_size > 0
