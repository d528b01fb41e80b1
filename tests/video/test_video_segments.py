"""plan_segments(): contiguous, plain-data segments, cut at keyframes where one is near the
target and mid-GOP where none is."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from batchscore.errors import UsageError
from batchscore.video import Segment, plan_segments, probe
from batchscore.video.job import segment_frames_for
from batchscore.video.probe import VideoInfo


def check_cover(segments: list[Segment], info: VideoInfo) -> None:
    """Segments follow each other, hold every frame exactly once, in order, and each seeks
    to the last keyframe at or before the first frame it decodes."""
    frame_pts, keyframes = info.frame_pts, info.keyframe_pts
    assert [s.index for s in segments] == list(range(len(segments)))
    assert sum(s.frame_count for s in segments) == len(frame_pts)
    for before, after in itertools.pairwise(segments):
        assert before.end_pts == after.start_pts
        assert before.first_frame + before.frame_count == after.first_frame
    assert segments[0].first_frame == 0 and segments[-1].end_pts is None
    owned = []
    for s in segments:
        inside = [p for p in frame_pts if s.contains(p)]
        assert inside == list(frame_pts[s.first_frame : s.first_frame + s.frame_count])
        owned.extend(inside)
        first_decoded = s.start_pts if s.warmup_pts is None else s.warmup_pts
        assert s.seek_pts == max(k for k in keyframes if k <= first_decoded)
    assert owned == list(frame_pts)


@pytest.mark.parametrize(
    ("target", "sizes"),
    [
        (12, [12, 12, 12]),  # keyframes every 12 frames: cut at each
        (13, [12, 12, 12]),  # a keyframe within 25% of the segment length is preferred
        (11, [12, 12, 12]),
        (10, [9, 9, 9, 9]),  # equal lengths, no short segment at the end; mid-GOP
        (7, [7, 7, 8, 7, 7]),
        (1, [1] * 36),
        (100, [36]),
    ],
)
def test_segment_sizes(clips: dict[str, Path], target: int, sizes: list[int]) -> None:
    info = probe(clips["ntsc"])  # keyframes every 12 frames, 36 frames
    segments = plan_segments(info, target)
    assert [s.frame_count for s in segments] == sizes
    check_cover(segments, info)


def test_mid_gop_segments_seek_to_the_keyframe_before_them(clips: dict[str, Path]) -> None:
    info = probe(clips["ntsc"])
    segments = plan_segments(info, 7)
    assert [s.first_frame for s in segments] == [0, 7, 14, 22, 29]
    keyframe = {0: 0, 7: 0, 14: 12, 22: 12, 29: 24}
    assert [s.seek_pts for s in segments] == [
        info.frame_pts[keyframe[s.first_frame]] for s in segments
    ]


def test_variable_frame_rate_segments(clips: dict[str, Path]) -> None:
    info = probe(clips["vfr"])  # 30 frames, keyframes every 10
    segments = plan_segments(info, 5)
    assert [s.frame_count for s in segments] == [5, 5, 5, 5, 5, 5]
    check_cover(segments, info)


@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_one_keyframe_still_splits(bbb: Path, count: int) -> None:
    info = probe(bbb)  # 132 frames, one keyframe
    assert info.keyframe_pts == (0,)
    segments = plan_segments(info, -(-132 // count))
    assert len(segments) == count
    assert all(s.seek_pts == 0 for s in segments)
    check_cover(segments, info)


def test_every_target_covers_every_frame(clips: dict[str, Path], bbb: Path) -> None:
    for info in [probe(bbb), probe(clips["vfr"]), probe(clips["offset"])]:
        for target, warmup in itertools.product([1, 2, 3, 5, 8, 13, 40, 200], [0, 3]):
            check_cover(plan_segments(info, target, warmup), info)


def test_segments_are_json_plain_data(clips: dict[str, Path]) -> None:
    segments = plan_segments(probe(clips["ntsc"]), 7)
    stored = json.loads(json.dumps([s.to_dict() for s in segments]))
    assert [Segment.from_dict(d) for d in stored] == segments
    assert stored[1] == {
        "index": 1,
        "start_pts": 7007,
        "end_pts": 14014,
        "first_frame": 7,
        "frame_count": 7,
        "time_base": "1/30000",
        "warmup_pts": None,
        "seek_pts": 0,
    }


def test_segments_written_before_seek_pts_existed() -> None:
    old = {"index": 1, "start_pts": 12012, "end_pts": None, "first_frame": 12,
           "frame_count": 24, "time_base": "1/30000", "warmup_pts": None}  # fmt: skip
    segment = Segment.from_dict(old)
    assert segment.seek_pts is None
    assert segment.decode_from(warmup=False) == (12012, 12012)


def test_warmup_frames_precede_each_segment_but_the_first(clips: dict[str, Path]) -> None:
    info = probe(clips["ntsc"])
    segments = plan_segments(info, 12, warmup_frames=4)
    assert [s.warmup_pts for s in segments] == [None, info.frame_pts[8], info.frame_pts[20]]
    assert [s.seek_pts for s in segments] == [0, 0, info.frame_pts[12]]  # before the warm-up
    assert [s.frame_count for s in segments] == [12, 12, 12]
    assert Segment.from_dict(segments[1].to_dict()) == segments[1]
    assert segments[1].decode_from(warmup=True) == (0, info.frame_pts[8])
    assert segments[1].decode_from(warmup=False) == (0, info.frame_pts[12])


def test_bad_plans(clips: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="target_frames must be at least 1, got 0"):
        plan_segments(probe(clips["ntsc"]), 0)
    with pytest.raises(UsageError, match="warmup_frames must be 0 or more, got -1"):
        plan_segments(probe(clips["ntsc"]), 5, -1)
    with pytest.raises(UsageError, match="not a segment description"):
        Segment.from_dict({"index": 0})


@pytest.mark.parametrize(
    ("frames", "workers", "expected"),
    [
        (132, 1, 100),  # one worker: no cut below 100 frames (round(132 / 100) = 1 segment)
        (132, 2, 66),  # but every worker gets a segment
        (132, 4, 33),
        (132, 200, 1),
        (10, 1, 10),
        (0, 1, 1),
        (600, 2, 100),  # four a worker would be 75: longer segments, fewer cuts
        (4000, 2, 300),  # four a worker (500) would be too long to retry
        (2000, 4, 125),  # four a worker
    ],
)
def test_segment_length_for_workers(frames: int, workers: int, expected: int) -> None:
    assert segment_frames_for(frames, workers) == expected
