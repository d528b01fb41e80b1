"""render_segment(): decode one segment, stylize in batches, encode a chunk with original pts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from batchscore.errors import MediaError, UsageError
from batchscore.video import EncoderSettings, plan_segments, probe, render_segment
from batchscore.video.render import decode_segment

FAST = EncoderSettings(preset="veryfast", crf=20)


def test_chunk_keeps_frames_and_timestamps(clips: dict[str, Path], tmp_path: Path) -> None:
    info = probe(clips["ntsc"])
    segment = plan_segments(info, 12)[1]
    calls: list[tuple[int, int]] = []
    batches: list[int] = []

    def stylize(frames: np.ndarray) -> np.ndarray:
        batches.append(len(frames))
        return 255 - frames

    chunk = tmp_path / "chunk.mp4"
    done = render_segment(
        clips["ntsc"], segment.to_dict(), stylize, chunk, FAST, batch_size=5,
        progress=lambda d, t: calls.append((d, t)),
    )  # fmt: skip
    assert done == 12
    assert batches == [5, 5, 2]
    assert calls == [(5, 12), (10, 12), (12, 12)]
    out = probe(chunk)
    assert out.frame_pts == info.frame_pts[12:24]
    assert out.time_base == info.time_base
    assert (out.width, out.height, out.codec, out.pix_fmt) == (64, 48, "h264", "yuv420p")
    assert out.audio == ()
    assert out.keyframe_pts[0] == info.frame_pts[12]
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(("target", "index", "first"), [(12, 2, 24), (7, 3, 22), (7, 1, 7)])
def test_chunk_frames_are_the_stylized_segment_frames(
    clips: dict[str, Path],
    tmp_path: Path,
    decode_all: Callable[[Path], np.ndarray],
    target: int,
    index: int,
    first: int,
) -> None:
    info = probe(clips["ntsc"])  # keyframes every 12 frames: targets of 7 cut mid-GOP
    segment = plan_segments(info, target)[index]
    assert segment.first_frame == first
    chunk = tmp_path / "chunk.mp4"
    render_segment(clips["ntsc"], segment, lambda f: 255 - f, chunk, FAST, batch_size=4)
    assert probe(chunk).keyframe_pts[0] == segment.start_pts  # its own IDR frame first
    stop = first + segment.frame_count
    source = decode_all(clips["ntsc"])[first:stop].astype(int)
    result = decode_all(chunk).astype(int)
    errors = np.abs((255 - result) - source).mean(axis=(1, 2, 3))
    assert result.shape == source.shape
    assert errors.max() < 4, errors  # frame i matches frame i: no shift, no reordering


def test_mid_gop_warmup_decodes_the_frames_before_the_segment(
    clips: dict[str, Path], decode_all: Callable[[Path], np.ndarray]
) -> None:
    info = probe(clips["long_gop"])  # one keyframe
    segment = plan_segments(info, 20, warmup_frames=5)[2]
    assert segment.seek_pts == 0 and segment.first_frame == 45
    batches = list(decode_segment(clips["long_gop"], segment, 4, warmup=True))
    assert [(len(frames), warm) for frames, _, warm in batches] == [
        (4, True), (1, True), (4, False), (4, False), (4, False), (4, False), (4, False),
        (3, False),
    ]  # fmt: skip
    assert [f.pts for frames, _, _ in batches for f in frames] == list(info.frame_pts[40:68])
    source = decode_all(clips["long_gop"])[40:68]
    assert np.array_equal(np.concatenate([rgb for _, rgb, _ in batches]), source)


def test_rotation_is_kept_on_the_chunk(clips: dict[str, Path], tmp_path: Path) -> None:
    segment = plan_segments(probe(clips["rotated"]), 5)[0]
    chunk = tmp_path / "chunk.mp4"
    render_segment(clips["rotated"], segment, lambda f: f, chunk, FAST)
    assert probe(chunk).rotation == 90


def test_stylize_must_keep_shape_and_dtype(clips: dict[str, Path], tmp_path: Path) -> None:
    segment = plan_segments(probe(clips["ntsc"]), 12)[0]
    chunk = tmp_path / "chunk.mp4"
    with pytest.raises(UsageError, match="stylize must return an array of shape"):
        render_segment(clips["ntsc"], segment, lambda f: f[:, ::2], chunk, FAST)
    with pytest.raises(UsageError, match="stylize must return uint8 frames, got float32"):
        render_segment(clips["ntsc"], segment, lambda f: f.astype(np.float32), chunk, FAST)
    assert not chunk.exists()
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_a_segment_the_file_cannot_deliver(clips: dict[str, Path], tmp_path: Path) -> None:
    segment = plan_segments(probe(clips["ntsc"]), 12)[0]
    wrong = segment.to_dict() | {"frame_count": 13}
    with pytest.raises(MediaError, match="should hold 13 frames but 12 decoded"):
        render_segment(clips["ntsc"], wrong, lambda f: f, tmp_path / "c.mp4", FAST)
    assert not list(tmp_path.iterdir())


def test_the_encoder_uses_the_settings(clips: dict[str, Path], tmp_path: Path) -> None:
    segment = plan_segments(probe(clips["ntsc"]), 12)[0]
    chunk = tmp_path / "chunk.mp4"
    render_segment(clips["ntsc"], segment, lambda f: f, chunk, EncoderSettings(bframes=0))
    with av.open(str(chunk)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert all(p.pts == p.dts for p in packets)  # no B-frames, no reordering


def test_encoder_settings_validation() -> None:
    with pytest.raises(UsageError, match="video codec must be libx264, got 'mpeg4'"):
        EncoderSettings(codec="mpeg4")
    with pytest.raises(UsageError, match="crf must be 0 to 51, got 99"):
        EncoderSettings(crf=99)
    with pytest.raises(UsageError, match=r"x264 preset must be one of ultrafast.*got 'turbo'"):
        EncoderSettings(preset="turbo")
    with pytest.raises(UsageError, match="unknown pixel format 'yuv999'"):
        EncoderSettings(pix_fmt="yuv999")
    with pytest.raises(UsageError, match="unknown encoder settings"):
        EncoderSettings.from_dict({"quality": 3})
    settings = EncoderSettings(bframes=2, x264_params="keyint=60")
    assert EncoderSettings.from_dict(settings.to_dict()) == settings
    assert settings.codec_options()["x264-params"] == "keyint=60:bframes=2"
