"""plan_segments(): keyframe-aligned, contiguous, plain-data segments."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from batchscore.errors import UsageError
from batchscore.video import Segment, plan_segments, probe


def _check_cover(segments: list[Segment], frame_pts: tuple[int, ...], keyframes: tuple[int, ...]):
    """Segments start at keyframes, follow each other, and hold every frame exactly once."""
    assert [s.index for s in segments] == list(range(len(segments)))
    assert all(s.start_pts in keyframes for s in segments)
    assert sum(s.frame_count for s in segments) == len(frame_pts)
    for before, after in itertools.pairwise(segments):
        assert before.end_pts == after.start_pts
        assert before.first_frame + before.frame_count == after.first_frame
    assert segments[-1].end_pts is None
    for s in segments:
        inside = [p for p in frame_pts if s.contains(p)]
        assert inside == list(frame_pts[s.first_frame : s.first_frame + s.frame_count])


@pytest.mark.parametrize(
    ("target", "sizes"), [(1, [12, 12, 12]), (12, [12, 12, 12]), (13, [24, 12]), (100, [36])]
)
def test_segments_close_at_the_first_keyframe_after_the_target(
    clips: dict[str, Path], target: int, sizes: list[int]
) -> None:
    info = probe(clips["ntsc"])  # keyframes every 12 frames, 36 frames
    segments = plan_segments(info, target)
    assert [s.frame_count for s in segments] == sizes
    _check_cover(segments, info.frame_pts, info.keyframe_pts)


def test_variable_frame_rate_segments(clips: dict[str, Path]) -> None:
    info = probe(clips["vfr"])
    segments = plan_segments(info, 5)
    assert [s.frame_count for s in segments] == [10, 10, 10]
    _check_cover(segments, info.frame_pts, info.keyframe_pts)


def test_one_keyframe_gives_one_segment(bbb: Path) -> None:
    segments = plan_segments(probe(bbb), 10)
    assert segments == [Segment(0, 0, None, 0, 132, "1/12800")]


def test_segments_are_json_plain_data(clips: dict[str, Path]) -> None:
    segments = plan_segments(probe(clips["ntsc"]), 12)
    stored = json.loads(json.dumps([s.to_dict() for s in segments]))
    assert [Segment.from_dict(d) for d in stored] == segments
    assert stored[1] == {
        "index": 1,
        "start_pts": 12012,
        "end_pts": 24024,
        "first_frame": 12,
        "frame_count": 12,
        "time_base": "1/30000",
        "warmup_pts": None,
    }


def test_warmup_frames_precede_each_segment_but_the_first(clips: dict[str, Path]) -> None:
    info = probe(clips["ntsc"])
    segments = plan_segments(info, 12, warmup_frames=4)
    assert [s.warmup_pts for s in segments] == [None, info.frame_pts[8], info.frame_pts[20]]
    assert [s.frame_count for s in segments] == [12, 12, 12]
    assert Segment.from_dict(segments[1].to_dict()) == segments[1]


def test_bad_plans(clips: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="target_frames must be at least 1, got 0"):
        plan_segments(probe(clips["ntsc"]), 0)
    with pytest.raises(UsageError, match="not a segment description"):
        Segment.from_dict({"index": 0})
