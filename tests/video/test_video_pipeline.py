"""stylize_video() end to end: the output keeps the input's frames, timestamps, duration,
resolution, rotation and audio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from batchscore.models import MultiStyleModel
from batchscore.video import EncoderSettings, VideoInfo, plan_segments, probe, stylize_video

FAST = EncoderSettings(preset="veryfast")
ULTRAFAST = EncoderSettings(preset="ultrafast")


def assert_same_video(source: VideoInfo, output: VideoInfo, *, size: tuple[int, int]) -> None:
    """What the output must keep. Container durations may differ by under a millisecond:
    the input's audio edit lists are rounded to milliseconds, ours to the video timescale."""
    assert output.frame_count == source.frame_count
    assert [p * output.time_base for p in output.frame_pts] == [
        p * source.time_base for p in source.frame_pts
    ]
    assert output.duration == source.duration
    assert output.container_duration == pytest.approx(source.container_duration, abs=1e-3)
    assert (output.width, output.height) == size
    assert output.rotation == source.rotation
    assert output.audio == source.audio
    assert output.codec == "h264"


@pytest.mark.parametrize("name", ["ntsc", "vfr", "tiny", "two_audio", "rotated", "offset"])
def test_output_keeps_everything(
    clips: dict[str, Path], tmp_path: Path, audio_packets: Callable, name: str
) -> None:
    output = tmp_path / "out.mp4"
    stylize_video(clips[name], output, lambda f: 255 - f, target_frames=5, settings=FAST)
    source = probe(clips[name])
    assert_same_video(source, probe(output), size=(source.width, source.height))
    assert audio_packets(output) == audio_packets(clips[name])  # copied, not re-encoded
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize(
    ("name", "target", "count"), [("long_gop", 20, 4), ("long_gop", 7, 13), ("long_gop_vfr", 9, 8)]
)
def test_segments_cut_mid_gop_join_to_the_same_video(
    clips: dict[str, Path],
    tmp_path: Path,
    audio_packets: Callable,
    decode_all: Callable[[Path], np.ndarray],
    name: str,
    target: int,
    count: int,
) -> None:
    source = probe(clips[name])
    segments = plan_segments(source, target)
    assert len(segments) == count
    assert sum(s.start_pts in source.keyframe_pts for s in segments) < count  # cut mid-GOP
    output = tmp_path / "out.mp4"
    stylize_video(clips[name], output, lambda f: f, target_frames=target, settings=FAST)
    assert_same_video(source, probe(output), size=(source.width, source.height))
    assert audio_packets(output) == audio_packets(clips[name])
    original, result = decode_all(clips[name]).astype(int), decode_all(output).astype(int)
    assert np.abs(result - original).mean(axis=(1, 2, 3)).max() < 4  # each frame in its place


@pytest.mark.slow
def test_bigbuckbunny_in_four_segments(bbb: Path, tmp_path: Path, audio_packets: Callable):
    source = probe(bbb)
    assert len(source.keyframe_pts) == 1
    assert [s.frame_count for s in plan_segments(source, 33)] == [33, 33, 33, 33]
    output = tmp_path / "bbb.mp4"
    stylize_video(bbb, output, lambda f: f, target_frames=33, settings=ULTRAFAST)
    assert_same_video(source, probe(output), size=(1280, 720))
    assert audio_packets(output) == audio_packets(bbb)


def test_odd_size_is_padded_for_yuv420p(
    clips: dict[str, Path], tmp_path: Path, decode_all: Callable[[Path], np.ndarray]
) -> None:
    output = tmp_path / "out.mp4"
    stylize_video(clips["odd"], output, lambda f: f, target_frames=5, settings=FAST)
    source, result = probe(clips["odd"]), probe(output)
    assert_same_video(source, result, size=(98, 62))
    assert result.pix_fmt == "yuv420p"
    frames = decode_all(output).astype(int)
    assert np.abs(frames[:, :, -1] - frames[:, :, -2]).mean() < 6  # the pad repeats the edge
    original = decode_all(clips["odd"]).astype(int)
    assert np.abs(frames[:, :61, :97] - original).mean() < 4


def test_odd_size_is_kept_with_yuv444p(clips: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    settings = EncoderSettings(preset="veryfast", pix_fmt="yuv444p")
    stylize_video(clips["odd"], output, lambda f: f, target_frames=5, settings=settings)
    result = probe(output)
    assert_same_video(probe(clips["odd"]), result, size=(97, 61))
    assert result.pix_fmt == "yuv444p"


def test_frames_stay_in_order_over_segments(
    clips: dict[str, Path], tmp_path: Path, decode_all: Callable[[Path], np.ndarray]
) -> None:
    output = tmp_path / "out.mp4"
    seen: list[tuple[int, int]] = []
    stylize_video(
        clips["ntsc"], output, lambda f: f, target_frames=1, settings=FAST, batch_size=5,
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    source, result = decode_all(clips["ntsc"]).astype(int), decode_all(output).astype(int)
    assert np.abs(result - source).mean(axis=(1, 2, 3)).max() < 4
    assert seen[-1] == (36, 36)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_with_a_style_model(clips: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    model = MultiStyleModel(5, max_size=32)
    stylize_video(clips["two_audio"], output, model, target_frames=12, settings=FAST)
    source = probe(clips["two_audio"])
    assert_same_video(source, probe(output), size=(64, 48))


@pytest.mark.slow
def test_bigbuckbunny_end_to_end(bbb: Path, tmp_path: Path, audio_packets: Callable) -> None:
    output = tmp_path / "bbb.mp4"
    model = MultiStyleModel("3:0.5,12:0.5", max_size=64, batch_size=8)
    stylize_video(bbb, output, model, settings=EncoderSettings(preset="ultrafast"))
    source = probe(bbb)
    assert_same_video(source, probe(output), size=(1280, 720))
    assert audio_packets(output) == audio_packets(bbb)


def test_public_surface() -> None:
    import batchscore.video

    assert sorted(batchscore.video.__all__) == [
        "AudioStreamInfo", "EncoderSettings", "Segment", "SmoothingSettings", "TemporalSmoother",
        "VideoInfo", "join_chunks", "plan_segments", "probe", "render_segment", "stylize_video",
    ]  # fmt: skip
