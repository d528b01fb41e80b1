"""Splitting a video into segments of about equal length: each segment is one mini-batch.

A segment may start at any frame. Rendering re-encodes it, so every chunk starts with an IDR
frame of its own whatever the source's keyframes are; only decoding needs a keyframe, and a
segment records which one to seek to (the last keyframe at or before the first frame it
decodes). Frames between that keyframe and the segment's first frame are decoded and dropped,
so a cut in the middle of a group of pictures costs at most one GOP of extra decoding, which
is cheap next to the network. Cuts at keyframes are preferred when one lies near the target.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from batchscore.errors import UsageError
from batchscore.video.probe import VideoInfo

__all__ = ["KEYFRAME_SLACK", "Segment", "plan_segments"]

KEYFRAME_SLACK = 0.25
"""A keyframe within this fraction of a segment's length of an ideal cut is cut at instead."""


@dataclass(frozen=True)
class Segment:
    """A contiguous run of frames; plain data (``to_dict``).

    Frames with ``start_pts <= pts < end_pts`` belong to it (``end_pts`` is None for the
    last segment); ``first_frame`` is the index of its first frame in presentation order.
    Timestamps are in units of ``time_base`` (a string such as ``"1/12800"``).
    ``warmup_pts``, when set, is the first of the frames before the segment that temporal
    smoothing decodes and stylizes (without encoding them) to settle before the segment.
    ``seek_pts`` is the keyframe decoding starts from: the last keyframe at or before
    ``warmup_pts`` (or ``start_pts`` when there is no warm-up); None means ``start_pts``
    is a keyframe (segments written before segments could start mid-GOP).
    """

    index: int
    start_pts: int
    end_pts: int | None
    first_frame: int
    frame_count: int
    time_base: str
    warmup_pts: int | None = None
    seek_pts: int | None = None

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
                warmup_pts=_optional_int(data.get("warmup_pts")),
                seek_pts=_optional_int(data.get("seek_pts")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a segment description: {dict(data)!r} ({exc})") from None

    def contains(self, pts: int) -> bool:
        """Whether a frame with this pts belongs to the segment."""
        return pts >= self.start_pts and (self.end_pts is None or pts < self.end_pts)

    def decode_from(self, warmup: bool) -> tuple[int, int]:
        """(keyframe pts to seek to, pts of the first frame to keep), with or without warm-up."""
        first = self.warmup_pts if warmup and self.warmup_pts is not None else self.start_pts
        seek = self.start_pts if self.seek_pts is None else min(self.seek_pts, first)
        return seek, first


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def plan_segments(info: VideoInfo, target_frames: int, warmup_frames: int = 0) -> list[Segment]:
    """Split the video into segments of about ``target_frames`` frames, cutting at any frame.

    The video is split into ``round(frames / target_frames)`` (at least one) segments of
    equal length, so no short segment is left over at the end. Where a keyframe lies within
    ``KEYFRAME_SLACK`` (25%) of that length of an ideal cut, the cut moves to the nearest such
    keyframe (the segment after it then decodes no frame it drops); otherwise the cut falls
    mid-GOP. Segments cover every frame exactly once, in order. ``warmup_frames`` frames
    before each segment are marked for temporal smoothing to warm up on.
    """
    if target_frames < 1:
        raise UsageError(f"target_frames must be at least 1, got {target_frames}")
    if warmup_frames < 0:
        raise UsageError(f"warmup_frames must be 0 or more, got {warmup_frames}")
    frames = info.frame_pts
    keyframes = sorted({bisect.bisect_left(frames, pts) for pts in info.keyframe_pts})
    bounds = _cuts(len(frames), keyframes, target_frames)
    time_base = str(info.time_base)
    segments = []
    for i, (first, stop) in enumerate(itertools.pairwise(bounds)):
        decode_first = max(0, first - warmup_frames)
        # the last keyframe at or before the first decoded frame (frame 0 always is one)
        seek = keyframes[max(0, bisect.bisect_right(keyframes, decode_first) - 1)]
        segments.append(
            Segment(
                index=i,
                start_pts=frames[first],
                end_pts=frames[stop] if stop < len(frames) else None,
                first_frame=first,
                frame_count=stop - first,
                time_base=time_base,
                warmup_pts=frames[decode_first] if first and warmup_frames else None,
                seek_pts=frames[seek],
            )
        )
    return segments


def _cuts(count: int, keyframes: Sequence[int], target: int) -> list[int]:
    """Frame indices where segments start, plus ``count`` at the end."""
    parts = max(1, round(count / target))
    length = count / parts
    slack = length * KEYFRAME_SLACK
    bounds = [0]
    for j in range(1, parts):
        ideal = round(j * length)
        low = bisect.bisect_left(keyframes, max(bounds[-1] + 1, ideal - slack))
        high = bisect.bisect_right(keyframes, min(count - 1, ideal + slack))
        near = keyframes[low:high]
        bounds.append(min(near, key=lambda k: (abs(k - ideal), k)) if near else ideal)
    return [*bounds, count]
