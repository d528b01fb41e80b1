"""The renderer scales frames for a network that runs below the video's resolution: frames
are decoded straight to the network's size and scaled back in the encoder's conversion."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchscore.errors import UsageError
from batchscore.models import MultiStyleModel
from batchscore.video import EncoderSettings, plan_segments, probe, render_segment
from batchscore.video import job as video_job
from batchscore.video.job import stylize_job

FAST = EncoderSettings(preset="veryfast", crf=16)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse else float("inf")


def test_stylize_sees_frames_at_the_network_size(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    info = probe(clips["ntsc"])  # 64x48
    segment = plan_segments(info, 12)[1]
    shapes: list[tuple[int, ...]] = []
    asked: list[tuple[int, int]] = []

    def stylize(frames: np.ndarray) -> np.ndarray:
        shapes.append(frames.shape)
        return 255 - frames

    def network_size(width: int, height: int) -> tuple[int, int]:
        asked.append((width, height))
        return 32, 24

    chunk = tmp_path / "chunk.mp4"
    done = render_segment(clips["ntsc"], segment, stylize, chunk, FAST, batch_size=5,
                          network_size=network_size)  # fmt: skip
    assert done == 12
    assert asked == [(64, 48)]
    assert shapes == [(5, 24, 32, 3), (5, 24, 32, 3), (2, 24, 32, 3)]
    out = probe(chunk)
    assert (out.width, out.height) == (64, 48)  # the video's size, not the network's
    assert out.frame_pts == info.frame_pts[12:24]


@pytest.mark.parametrize("answer", [None, (64, 48)])
def test_no_scaling_when_the_network_takes_the_video_size(
    clips: dict[str, Path], tmp_path: Path, answer: tuple[int, int] | None
) -> None:
    segment = plan_segments(probe(clips["ntsc"]), 12)[0]
    shapes: list[tuple[int, ...]] = []

    def stylize(frames: np.ndarray) -> np.ndarray:
        shapes.append(frames.shape[1:])
        return frames

    render_segment(clips["ntsc"], segment, stylize, tmp_path / "c.mp4", FAST, batch_size=6,
                   network_size=lambda w, h: answer)  # fmt: skip
    assert shapes == [(48, 64, 3), (48, 64, 3)]


def test_scaled_output_matches_the_model_resizing_itself(
    bbb: Path, tmp_path: Path, decode_all: Callable[[Path], np.ndarray]
) -> None:
    """The real clip at 1280x720 through a network at 64 pixels: scaling in swscale (one
    pass each way) and in ``stylize`` (PIL, at full size) give the same picture."""
    segment = plan_segments(probe(bbb), 12)[0]
    model = MultiStyleModel(7, max_size=64)
    assert model.network_size(1280, 720) == (64, 36)
    itself, scaled = tmp_path / "itself.mp4", tmp_path / "scaled.mp4"
    render_segment(bbb, segment, model.stylize, itself, FAST)
    render_segment(bbb, segment, model.stylize, scaled, FAST, network_size=model.network_size)
    a, b = decode_all(itself), decode_all(scaled)
    assert a.shape == b.shape == (segment.frame_count, 720, 1280, 3)
    assert psnr(a, b) > 38  # 45 dB here; a misplaced or mis-scaled frame gives under 20
    assert psnr(a, np.roll(b, 1, axis=0)) < psnr(a, b) - 3


@pytest.mark.parametrize(("pix_fmt", "size"), [("yuv420p", (98, 62)), ("yuv444p", (97, 61))])
def test_odd_sizes_are_scaled_then_padded(
    clips: dict[str, Path],
    tmp_path: Path,
    decode_all: Callable[[Path], np.ndarray],
    pix_fmt: str,
    size: tuple[int, int],
) -> None:
    """97x61 frames through a 'network' at 48x30: the chunk holds the picture PIL's
    bicubic scaling down and back up gives (and, for 4:2:0, a repeated last column/row)."""
    settings = EncoderSettings(preset="veryfast", crf=12, pix_fmt=pix_fmt)
    scaled = tmp_path / "scaled.mp4"
    segment = plan_segments(probe(clips["odd"]), 100)[0]
    render_segment(clips["odd"], segment, lambda f: 255 - f, scaled, settings,
                   network_size=lambda w, h: (48, 30))  # fmt: skip
    out = probe(scaled)
    assert (out.width, out.height) == size
    assert out.frame_pts == probe(clips["odd"]).frame_pts
    bicubic = Image.Resampling.BICUBIC
    expected = np.stack([
        np.asarray(Image.fromarray(255 - np.asarray(Image.fromarray(f).resize((48, 30), bicubic)))
                   .resize((97, 61), bicubic))
        for f in decode_all(clips["odd"])
    ])  # fmt: skip
    got = decode_all(scaled)
    assert psnr(got[:, :61, :97], expected) > 30
    if pix_fmt == "yuv420p":  # the padding repeats the last column and row (after coding)
        got = got.astype(int)
        assert np.abs(got[:, :, 97] - got[:, :, 96]).mean() < 3
        assert np.abs(got[:, 61] - got[:, 60]).mean() < 3


def test_model_network_size() -> None:
    assert MultiStyleModel(0, max_size=256).network_size(1280, 720) == (256, 144)
    assert MultiStyleModel(0, max_size=None).network_size(97, 61) == (97, 61)
    assert MultiStyleModel(0, max_size=256).network_size(200, 100) == (200, 100)
    # blending the input back in needs it at full resolution: no scaling by the caller
    assert MultiStyleModel(0, max_size=256, strength=0.5).network_size(1280, 720) is None


class _Recording:
    """A network at half the video's size that records the frame shapes it is given."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        return width // 2, height // 2

    def stylize(self, frames: np.ndarray) -> np.ndarray:
        with self.log.open("a") as f:
            f.write(json.dumps(list(frames.shape)) + "\n")
        return 255 - frames


def test_the_video_job_scales_for_the_network(
    ws, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    decode_all: Callable[[Path], np.ndarray],
) -> None:  # fmt: skip
    log = tmp_path / "shapes.jsonl"
    monkeypatch.setattr(video_job, "model_from_spec", lambda spec: _Recording(log))  # forked
    out = tmp_path / "out.mp4"
    job = stylize_job(ws, str(clips["ntsc"]), str(out), style=0, workers=1, segment_frames=12)
    assert job.state == "succeeded"
    shapes = [tuple(json.loads(line)) for line in log.read_text().splitlines()]
    assert {s[1:] for s in shapes} == {(24, 32, 3)}
    assert sum(s[0] for s in shapes) == probe(clips["ntsc"]).frame_count
    assert (probe(out).width, probe(out).height) == (64, 48)
    source = decode_all(clips["ntsc"])
    expected = 255 - source  # what the renderer scaled back should look like, roughly
    assert psnr(decode_all(out), expected) > 20



@pytest.mark.parametrize("answer", [(0, 24), (32,), [32, 24], (32.0, 24), "32x24", (-32, 24)])
def test_a_bad_network_size_is_refused_before_any_chunk(
    clips: dict[str, Path], tmp_path: Path, answer: object
) -> None:
    segment = plan_segments(probe(clips["ntsc"]), 12)[0]
    chunk = tmp_path / "chunk.mp4"
    with pytest.raises(UsageError, match=r"network_size must return \(width, height\)"):
        render_segment(clips["ntsc"], segment, lambda f: f, chunk, FAST,
                       network_size=lambda w, h: answer)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # no chunk, no partial file
