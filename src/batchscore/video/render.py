"""Rendering one segment: decode its frames, stylize them in batches, encode a video-only chunk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import av
import av.error
import av.video.stream
import numpy as np
from av.video.reformatter import VideoReformatter

from batchscore.errors import MediaError, UsageError
from batchscore.video.encoding import EncoderSettings, add_video_stream, mov_timescale
from batchscore.video.probe import open_input, video_stream
from batchscore.video.segments import Segment
from batchscore.video.smoothing import SmoothingSettings, TemporalSmoother

__all__ = ["Progress", "Stylize", "decode_segment", "render_segment"]

Stylize = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]
"""Called as ``progress(frames_done, frames_total)`` after each batch."""


def decode_segment(
    input_path: str | Path, segment: Segment, batch_size: int, warmup: bool = False
) -> Iterator[tuple[list[av.VideoFrame], np.ndarray, bool]]:
    """Yield (source frames, N,H,W,3 uint8 RGB array, is_warmup) batches, in order.

    Seeks to the segment's keyframe (``Segment.seek_pts``; with ``warmup``, the keyframe
    before its warm-up frames, which come first in batches of their own), drops the decoded
    frames before the first one it keeps, and decodes until the next segment starts; raises
    MediaError when fewer frames decode than the plan expects (damaged file).
    """
    decoded = 0
    seek, first = segment.decode_from(warmup)
    to_rgb = _RgbConverter()
    with open_input(input_path) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        container.seek(seek, stream=stream, backward=True)
        batch: list[av.VideoFrame] = []
        in_warmup = first < segment.start_pts
        started = False
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if not started and frame.pts > first:
                    raise MediaError(
                        f"{input_path}: seeking to the keyframe at pts {seek} for segment "
                        f"{segment.index} landed at pts {frame.pts}, after its first frame "
                        f"(pts {first}); the file's index is damaged"
                    )
                started = True
                if frame.pts < first:
                    continue
                if segment.end_pts is not None and frame.pts >= segment.end_pts:
                    break
                if in_warmup and frame.pts >= segment.start_pts:
                    if batch:
                        yield batch, to_rgb(batch), True
                    batch, in_warmup = [], False
                batch.append(frame)
                decoded += 0 if in_warmup else 1
                if len(batch) == batch_size:
                    yield batch, to_rgb(batch), in_warmup
                    batch = []
        except av.error.FFmpegError as exc:
            raise MediaError(
                f"{input_path}: decoding segment {segment.index} failed after "
                f"{decoded} frames: {exc}"
            ) from None
        if batch:
            yield batch, to_rgb(batch), in_warmup
    if decoded != segment.frame_count:
        raise MediaError(
            f"{input_path}: segment {segment.index} should hold {segment.frame_count} frames "
            f"but {decoded} decoded; the file is truncated or corrupt"
        )


class _RgbConverter:
    """Frames to one N,H,W,3 RGB array, reusing one scaler (creating one per frame costs
    more than converting a small frame)."""

    def __init__(self) -> None:
        self._reformatter = VideoReformatter()

    def __call__(self, frames: list[av.VideoFrame]) -> np.ndarray:
        convert = self._reformatter.reformat
        return np.stack(
            [convert(f, format="rgb24", src_color_range=f.color_range).to_ndarray() for f in frames]
        )


def render_segment(
    input_path: str | Path,
    segment: Segment | Mapping[str, Any],
    stylize: Stylize,
    out_chunk_path: str | Path,
    settings: EncoderSettings | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
    smoothing: SmoothingSettings | None = None,
) -> int:
    """Stylize one segment into a video-only MP4 chunk; returns the number of frames.

    Every frame keeps its original pts and duration, in the input stream's time base; the
    encoder is flushed; the chunk is written under a temporary name and renamed, so a chunk
    at ``out_chunk_path`` is always complete. With ``smoothing``, frames are smoothed over
    time (see ``smoothing.py``), starting at the segment's warm-up frames.
    """
    segment = segment if isinstance(segment, Segment) else Segment.from_dict(segment)
    settings = settings or EncoderSettings()
    if smoothing is not None:
        stylize = TemporalSmoother(stylize, smoothing)
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    out_path = Path(out_chunk_path)
    partial = out_path.with_name(f"{out_path.name}.partial")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open_input(input_path) as container:
        source = video_stream(container)
        time_base = source.time_base
        rate = source.average_rate
        color = _color_tags(source)
    if time_base is None:
        raise MediaError(f"{input_path}: the video stream has no time base")
    done = 0
    reformatter = VideoReformatter()
    try:
        options = {"movie_timescale": str(mov_timescale(time_base))}
        with av.open(str(partial), "w", format="mp4", options=options) as output:
            stream: av.video.stream.VideoStream | None = None
            warmup = smoothing is not None
            for frames, rgb, is_warmup in decode_segment(input_path, segment, batch_size, warmup):
                styled = _check_output(stylize(rgb), rgb)
                if is_warmup:
                    continue
                if stream is None:
                    stream = add_video_stream(
                        output, settings, width=rgb.shape[2], height=rgb.shape[1],
                        time_base=time_base, rate=rate,
                    )  # fmt: skip
                    _tag_colors(stream, color)
                    if frames[0].rotation:
                        stream.set_display_rotation(frames[0].rotation)
                for source_frame, picture in zip(frames, styled, strict=True):
                    frame = _encodable(picture, stream, color, reformatter)
                    frame.pts = source_frame.pts
                    frame.duration = source_frame.duration
                    frame.time_base = time_base
                    output.mux(stream.encode(frame))
                done += len(frames)
                if progress is not None:
                    progress(done, segment.frame_count)
            if stream is None:
                raise MediaError(f"{input_path}: segment {segment.index} holds no frames")
            output.mux(stream.encode(None))
        os.replace(partial, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return done


def _check_output(styled: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    if not isinstance(styled, np.ndarray) or styled.shape != rgb.shape:
        shape = getattr(styled, "shape", type(styled).__name__)
        raise UsageError(f"stylize must return an array of shape {rgb.shape}, got {shape}")
    if styled.dtype != np.uint8:
        raise UsageError(f"stylize must return uint8 frames, got {styled.dtype}")
    return styled


def _encodable(
    picture: np.ndarray,
    stream: av.video.stream.VideoStream,
    color: dict[str, int],
    reformatter: VideoReformatter,
) -> av.VideoFrame:
    """An RGB picture as a frame in the encoder's size and pixel format."""
    height, width = picture.shape[:2]
    pad_h, pad_w = stream.height - height, stream.width - width
    if pad_h or pad_w:
        picture = np.pad(picture, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    return reformatter.reformat(
        frame,
        format=stream.pix_fmt,
        dst_colorspace=color["colorspace"],
        dst_color_range=color["color_range"],
    )


def _color_tags(stream: av.video.stream.VideoStream) -> dict[str, int]:
    ctx = stream.codec_context
    return {
        "colorspace": ctx.colorspace,
        "color_range": ctx.color_range,
        "color_primaries": ctx.color_primaries,
        "color_trc": ctx.color_trc,
    }


def _tag_colors(stream: av.video.stream.VideoStream, color: dict[str, int]) -> None:
    """Tag the output with the input's colour description, which the frames were converted to."""
    ctx = stream.codec_context
    ctx.colorspace = color["colorspace"]
    ctx.color_range = color["color_range"]
    ctx.color_primaries = color["color_primaries"]
    ctx.color_trc = color["color_trc"]
