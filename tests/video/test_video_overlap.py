"""render_segment() overlaps decoding, the network and encoding: errors in any stage stop
the others and reach the caller, nothing is left at the chunk's path, no thread lingers."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from batchscore.errors import MediaError
from batchscore.video import EncoderSettings, plan_segments, probe, render_segment
from batchscore.video import render as render_module

FAST = EncoderSettings(preset="ultrafast")


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("decode", "encode"))]


def _segment(clip: Path):  # the whole clip as one segment
    return plan_segments(probe(clip), 10_000)[0]


def test_a_failing_stylize_stops_decoding_and_encoding(clips, tmp_path) -> None:
    calls = []

    def stylize(frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        if len(calls) == 3:
            raise RuntimeError("the network broke on batch 3")
        return frames

    chunk = tmp_path / "chunk.mp4"
    with pytest.raises(RuntimeError, match="broke on batch 3"):
        render_segment(clips["long_gop"], _segment(clips["long_gop"]), stylize, chunk, FAST,
                       batch_size=4)
    assert len(calls) == 3  # no batch stylized after the failure
    assert not chunk.exists() and not list(tmp_path.glob("*.partial"))
    assert _stage_threads() == []


def test_a_failing_encoder_stage_reaches_the_caller(clips, tmp_path) -> None:
    styled: list[int] = []

    def progress(done: int, total: int) -> None:  # runs in the encoding thread
        if done >= 8:
            raise OSError("disk full while encoding")

    def stylize(frames: np.ndarray) -> np.ndarray:
        styled.append(len(frames))
        return frames

    chunk = tmp_path / "chunk.mp4"
    with pytest.raises(OSError, match="disk full"):
        render_segment(clips["long_gop"], _segment(clips["long_gop"]), stylize, chunk, FAST,
                       batch_size=4, progress=progress)
    # the network stops within PREFETCH batches of the encoder's failure, not at the end
    assert sum(styled) < 90
    assert not chunk.exists() and not list(tmp_path.glob("*.partial"))
    assert _stage_threads() == []


def test_a_decoding_error_in_the_prefetch_thread_reaches_the_caller(clips, tmp_path) -> None:
    # a plan that expects more frames than the file has: the decoding thread finds out
    segment = dataclasses.replace(_segment(clips["long_gop"]), frame_count=95)
    chunk = tmp_path / "chunk.mp4"
    with pytest.raises(MediaError, match="should hold 95 frames but 90 decoded"):
        render_segment(clips["long_gop"], segment, lambda f: f, chunk, FAST, batch_size=4)
    assert not chunk.exists() and not list(tmp_path.glob("*.partial"))
    assert _stage_threads() == []


def test_batches_stay_in_order_when_the_stages_run_at_different_speeds(
    clips, tmp_path, decode_all
) -> None:
    import time

    def slow_first(frames: np.ndarray) -> np.ndarray:
        time.sleep(0.05 if frames[0, 0, 0, 0] % 2 else 0)  # jitter the network's pace
        return 255 - frames

    chunk = tmp_path / "chunk.mp4"
    render_segment(clips["long_gop"], _segment(clips["long_gop"]), slow_first, chunk,
                   EncoderSettings(crf=0, preset="ultrafast", pix_fmt="yuv444p"), batch_size=3)
    source, out = decode_all(clips["long_gop"]), decode_all(chunk)
    assert out.shape == source.shape
    err = np.abs(out.astype(int) - (255 - source.astype(int))).mean()
    assert err < 2.0  # frame for frame, in order (a swapped pair of batches would be far off)


def test_prefetch_depth_bounds_the_frames_held(clips, tmp_path) -> None:
    """Decoding runs at most PREFETCH batches ahead of the network."""
    decoded: list[int] = []
    real = render_module.decode_segment

    def counting(*args, **kwargs):
        for batch in real(*args, **kwargs):
            decoded.append(len(batch[0]))
            yield batch

    ahead: list[int] = []
    stylized: list[int] = []

    def stylize(frames: np.ndarray) -> np.ndarray:
        stylized.append(len(frames))
        ahead.append(len(decoded) - len(stylized))
        return frames

    original = render_module.decode_segment
    render_module.decode_segment = counting  # type: ignore[assignment]
    try:
        render_segment(clips["long_gop"], _segment(clips["long_gop"]), stylize,
                       tmp_path / "c.mp4", FAST, batch_size=4)
    finally:
        render_module.decode_segment = original  # type: ignore[assignment]
    assert max(ahead) <= render_module.PREFETCH
