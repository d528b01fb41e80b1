"""What a video file holds: size, frames, timestamps, keyframes, rotation and audio streams."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.error
import av.stream
import av.video.stream

from batchscore.errors import InputError, MediaError

__all__ = [
    "AudioStreamInfo",
    "VideoInfo",
    "first_frame_rotation",
    "open_input",
    "probe",
    "video_stream",
]


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream, as the join copies it."""

    index: int
    codec: str
    channels: int
    sample_rate: int
    layout: str
    language: str | None


@dataclass(frozen=True)
class VideoInfo:
    """The facts of a video file that planning, rendering and checking need.

    Timestamps are in ``time_base`` units of the video stream; ``frame_pts`` lists every frame
    in presentation order and ``keyframe_pts`` the frames a decoder can start from.
    ``duration`` is the video stream's duration in seconds as the container states it (as
    ffprobe reports it), or the span of the frames when the container does not say;
    ``container_duration`` is the whole file's (the longest stream); ``rotation`` is the
    display matrix angle, counter-clockwise degrees.
    """

    path: str
    stream_index: int
    width: int
    height: int
    codec: str
    pix_fmt: str | None
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int
    frame_pts: tuple[int, ...]
    keyframe_pts: tuple[int, ...]
    duration: Fraction
    container_duration: float | None
    rotation: int
    audio: tuple[AudioStreamInfo, ...]

    @property
    def fps(self) -> Fraction | None:
        """The average frame rate (the same as ``average_rate``)."""
        return self.average_rate


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading, turning FFmpeg's refusals into MediaError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video {path} does not exist or is not a file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path} is not a media file FFmpeg can read: {exc}") from None


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first real video stream (cover art is skipped), or MediaError."""
    path = container.name
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        raise MediaError(f"{path} is a still image ({container.format.name}), not a video")
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = ", ".join(f"{s.type} ({s.codec_context.name})" for s in container.streams) or "none"
    raise MediaError(f"{path} has no video stream (streams: {kinds})")


def probe(path: str | Path) -> VideoInfo:
    """Read a video's facts by demuxing its packets and decoding its first frame.

    Damaged files fail, they are not half-processed: a file that FFmpeg cannot open, or whose
    video packets cannot all be read back, or whose first frame does not decode, raises
    MediaError naming the file and the problem. (Rendering checks the rest: a segment that
    decodes fewer frames than planned raises MediaError too.) Nothing here can hang: every
    loop ends with the file's packets.
    """
    with open_input(path) as container:
        stream = video_stream(container)
        frame_pts, keyframe_pts, end_pts = _scan_packets(container, stream, path)
        if not frame_pts:
            raise MediaError(f"{path} has a video stream with zero frames")
        rotation = first_frame_rotation(container, stream)
        ctx = stream.codec_context
        audio = tuple(
            AudioStreamInfo(
                index=a.index,
                codec=a.codec_context.name,
                channels=a.codec_context.channels,
                sample_rate=a.codec_context.sample_rate,
                layout=a.codec_context.layout.name,
                language=a.metadata.get("language"),
            )
            for a in container.streams.audio
        )
        time_base = stream.time_base or Fraction(1, 1)
        return VideoInfo(
            path=str(path),
            stream_index=stream.index,
            width=ctx.width,
            height=ctx.height,
            codec=ctx.name,
            pix_fmt=ctx.pix_fmt,
            time_base=time_base,
            average_rate=stream.average_rate,
            frame_count=len(frame_pts),
            frame_pts=tuple(frame_pts),
            keyframe_pts=tuple(keyframe_pts),
            duration=(stream.duration or end_pts - frame_pts[0]) * time_base,
            container_duration=None if container.duration is None else container.duration / 1e6,
            rotation=rotation,
            audio=audio,
        )


def _scan_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: str | Path
) -> tuple[list[int], list[int], int]:
    """Sorted frame pts, keyframe pts and the end pts (last pts + its duration)."""
    frames: list[int] = []
    keyframes: list[int] = []
    end = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.is_corrupt:
                raise MediaError(
                    f"{path} is truncated or corrupt: video packet at pts {packet.pts} is damaged"
                )
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                raise MediaError(f"{path} has a video packet without a timestamp")
            frames.append(pts)
            if packet.is_keyframe:
                keyframes.append(pts)
            stop = pts + (packet.duration or 0)
            end = stop if end is None else max(end, stop)
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"{path} is truncated or corrupt: reading video packet {len(frames)} failed: {exc}"
        ) from None
    frames.sort()
    keyframes.sort()
    if frames and keyframes[:1] != frames[:1]:
        raise MediaError(f"{path} does not start with a keyframe; it cannot be split or decoded")
    if frames and end is not None and end <= frames[-1]:
        end = frames[-1] + (frames[-1] - frames[-2] if len(frames) > 1 else 1)
    return frames, keyframes, end if end is not None else 0


def first_frame_rotation(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> int:
    """The rotation (counter-clockwise degrees) of the stream's first decoded frame."""
    path = container.name
    container.seek(0, stream=stream)
    try:
        for frame in container.decode(stream):
            return int(frame.rotation)
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: the first video frame does not decode: {exc}") from None
    raise MediaError(f"{path}: no video frame decodes")
