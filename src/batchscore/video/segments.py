"""Splitting a video into segments at keyframes: each segment is one mini-batch of work."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from batchscore.errors import UsageError
from batchscore.video.probe import VideoInfo

__all__ = ["Segment", "plan_segments"]


@dataclass(frozen=True)
class Segment:
    """A contiguous run of frames that starts at a keyframe; plain data (``to_dict``).

    Frames with ``start_pts <= pts < end_pts`` belong to it (``end_pts`` is None for the
    last segment); ``first_frame`` is the index of its first frame in presentation order.
    Timestamps are in units of ``time_base`` (a string such as ``"1/12800"``).
    ``warmup_pts``, when set, is the first of the frames before the segment that temporal
    smoothing decodes and stylizes (without encoding them) to settle before the segment.
    """

    index: int
    start_pts: int
    end_pts: int | None
    first_frame: int
    frame_count: int
    time_base: str
    warmup_pts: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable data, e.g. for a database row."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Segment:
        """The segment that ``to_dict`` wrote."""
        try:
            return cls(
                index=int(data["index"]),
                start_pts=int(data["start_pts"]),
                end_pts=None if data["end_pts"] is None else int(data["end_pts"]),
                first_frame=int(data["first_frame"]),
                frame_count=int(data["frame_count"]),
                time_base=str(data["time_base"]),
                warmup_pts=None if data.get("warmup_pts") is None else int(data["warmup_pts"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a segment description: {dict(data)!r} ({exc})") from None

    @property
    def fraction_time_base(self) -> Fraction:
        return Fraction(self.time_base)

    def contains(self, pts: int) -> bool:
        """Whether a frame with this pts belongs to the segment."""
        return pts >= self.start_pts and (self.end_pts is None or pts < self.end_pts)


def plan_segments(info: VideoInfo, target_frames: int, warmup_frames: int = 0) -> list[Segment]:
    """Split the video at keyframes into segments of about ``target_frames`` frames.

    A segment closes at the first keyframe at or after ``target_frames`` frames, so segments
    are at least that long except the last; a video with keyframes far apart gives longer
    segments (one keyframe gives one segment). ``warmup_frames`` frames before each segment
    are marked for temporal smoothing to warm up on.
    """
    if target_frames < 1:
        raise UsageError(f"target_frames must be at least 1, got {target_frames}")
    if warmup_frames < 0:
        raise UsageError(f"warmup_frames must be 0 or more, got {warmup_frames}")
    frames = list(info.frame_pts)
    starts = [0]
    for pts in info.keyframe_pts:
        position = bisect.bisect_left(frames, pts)
        if position - starts[-1] >= target_frames:
            starts.append(position)
    bounds = [*starts, len(frames)]
    time_base = str(info.time_base)
    return [
        Segment(
            index=i,
            start_pts=frames[first],
            end_pts=frames[stop] if stop < len(frames) else None,
            first_frame=first,
            frame_count=stop - first,
            time_base=time_base,
            warmup_pts=frames[max(0, first - warmup_frames)] if first and warmup_frames else None,
        )
        for i, (first, stop) in enumerate(itertools.pairwise(bounds))
    ]
