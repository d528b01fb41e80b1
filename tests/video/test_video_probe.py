"""probe(): the facts of real and generated clips; clear errors for files that are not videos."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from batchscore.errors import InputError, MediaError, UsageError
from batchscore.video import AudioStreamInfo, probe


def test_bigbuckbunny_facts(bbb: Path) -> None:
    info = probe(bbb)
    assert (info.width, info.height) == (1280, 720)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.average_rate == info.fps == Fraction(25)
    assert info.time_base == Fraction(1, 12800)
    assert info.frame_count == len(info.frame_pts) == 132
    assert info.frame_pts == tuple(range(0, 132 * 512, 512))
    assert info.keyframe_pts == (0,)
    assert info.duration == Fraction(132, 25)
    assert info.container_duration == pytest.approx(5.312)
    assert info.rotation == 0
    assert info.audio == (
        AudioStreamInfo(
            index=1, codec="aac", channels=6, sample_rate=48000, layout="5.1", language="und"
        ),
    )


def test_ntsc_clip(clips: dict[str, Path]) -> None:
    info = probe(clips["ntsc"])
    assert info.average_rate == Fraction(30000, 1001)
    assert info.frame_count == 36
    assert [pts * info.time_base for pts in info.frame_pts] == [
        Fraction(1001 * i, 30000) for i in range(36)
    ]
    assert info.keyframe_pts == (0, 12012, 24024)
    assert [(a.codec, a.channels, a.sample_rate) for a in info.audio] == [("aac", 2, 48000)]


def test_variable_frame_rate_clip(clips: dict[str, Path], vfr_pts: tuple[int, ...]) -> None:
    info = probe(clips["vfr"])
    seconds = [pts * info.time_base for pts in info.frame_pts]
    assert seconds == [Fraction(ms, 1000) for ms in vfr_pts]
    assert info.audio == ()


def test_rotation_and_audio_tracks(clips: dict[str, Path]) -> None:
    assert probe(clips["rotated"]).rotation == 90
    tracks = probe(clips["two_audio"]).audio
    assert [(a.channels, a.sample_rate, a.language) for a in tracks] == [
        (1, 44100, "eng"),
        (2, 22050, "fra"),
    ]


def test_odd_and_tiny_sizes(clips: dict[str, Path]) -> None:
    odd, tiny = probe(clips["odd"]), probe(clips["tiny"])
    assert (odd.width, odd.height, odd.pix_fmt) == (97, 61, "yuv444p")
    assert (tiny.width, tiny.height, tiny.frame_count) == (16, 16, 3)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("jpeg", "is a still image"),
        ("text", "is not a media file FFmpeg can read"),
        ("truncated", "is not a media file FFmpeg can read"),
        ("truncated_faststart", "truncated or corrupt"),
        ("audio_only", "has no video stream (streams: audio (aac))"),
        ("zero_frames", "has a video stream with zero frames"),
    ],
)
def test_bad_media_fails_clearly(bad_media: dict[str, Path], kind: str, message: str) -> None:
    with pytest.raises(MediaError) as caught:
        probe(bad_media[kind])
    assert message in str(caught.value)
    assert str(bad_media[kind]) in str(caught.value)
    assert isinstance(caught.value, UsageError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "nope.mp4")
