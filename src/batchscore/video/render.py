"""Rendering one segment: decode its frames, stylize them in batches, encode a video-only chunk."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.error
import av.video.stream
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from batchscore.errors import MediaError, UsageError
from batchscore.video.encoding import EncoderSettings, add_video_stream, mov_timescale
from batchscore.video.probe import open_input, video_stream
from batchscore.video.segments import Segment
from batchscore.video.smoothing import SmoothingSettings, TemporalSmoother

__all__ = ["Progress", "Stylize", "decode_segment", "render_segment"]

Stylize = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]
"""Called as ``progress(frames_done, frames_total)`` after each batch."""
NetworkSize = Callable[[int, int], "tuple[int, int] | None"]
"""Called as ``network_size(width, height)`` with the video's size: the (width, height) that
``stylize`` takes and returns frames at, or None for the video's own size."""

SCALING = Interpolation.BICUBIC
"""How frames are scaled to and from the network's size (the same kernel as the models'
own resizing, PIL's bicubic)."""


def decode_segment(
    input_path: str | Path,
    segment: Segment,
    batch_size: int,
    warmup: bool = False,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[list[av.VideoFrame], np.ndarray, bool]]:
    """Yield (source frames, N,H,W,3 uint8 RGB array, is_warmup) batches, in order.

    The RGB frames are ``size`` (width, height) when given, scaled in the same pass that
    converts them to RGB; else the video's own size.

    Seeks to the segment's keyframe (``Segment.seek_pts``; with ``warmup``, the keyframe
    before its warm-up frames, which come first in batches of their own), drops the decoded
    frames before the first one it keeps, and decodes until the next segment starts; raises
    MediaError when fewer frames decode than the plan expects (damaged file).
    """
    decoded = 0
    seek, first = segment.decode_from(warmup)
    to_rgb = _RgbConverter(size)
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
    """Frames to one N,H,W,3 RGB array (of ``size`` when given), reusing one scaler
    (creating one per frame costs more than converting a small frame)."""

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self._reformatter = VideoReformatter()
        self._width, self._height = size or (None, None)

    def __call__(self, frames: list[av.VideoFrame]) -> np.ndarray:
        convert = self._reformatter.reformat
        return np.stack([
            convert(f, format="rgb24", width=self._width, height=self._height,
                    interpolation=SCALING, src_color_range=f.color_range).to_ndarray()
            for f in frames
        ])  # fmt: skip


def render_segment(
    input_path: str | Path,
    segment: Segment | Mapping[str, Any],
    stylize: Stylize,
    out_chunk_path: str | Path,
    settings: EncoderSettings | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
    smoothing: SmoothingSettings | None = None,
    network_size: NetworkSize | None = None,
) -> int:
    """Stylize one segment into a video-only MP4 chunk; returns the number of frames.

    Every frame keeps its original pts and duration, in the input stream's time base; the
    encoder is flushed; the chunk is written under a temporary name and renamed, so a chunk
    at ``out_chunk_path`` is always complete. With ``smoothing``, frames are smoothed over
    time (see ``smoothing.py``), starting at the segment's warm-up frames.

    Decoding, stylizing and encoding overlap: one thread decodes the next batches (at most
    ``PREFETCH`` ahead) while ``stylize`` runs in the calling thread, and another encodes the
    batches already stylized (at most ``PREFETCH`` behind). FFmpeg and onnxruntime release
    the GIL, so the network is not kept waiting for either; batches stay in order, memory
    stays bounded, and an error in any stage stops the others and is raised here.
    ``progress`` is called from the encoding thread once each batch is encoded.

    ``network_size`` (``StyleModel.network_size``) lets the renderer do the scaling a
    network running below the video's resolution needs: frames are decoded straight to the
    network's size and its output is scaled back while it is converted for the encoder, one
    swscale pass each way, instead of converting full-size frames to RGB and back and
    resizing them in ``stylize``. The chunk keeps the video's size either way.
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
        size = (source.width, source.height)
    run_size = _checked_size(network_size(*size), size) if network_size is not None else None
    if time_base is None:
        raise MediaError(f"{input_path}: the video stream has no time base")
    try:
        options = {"movie_timescale": str(mov_timescale(time_base))}
        with av.open(str(partial), "w", format="mp4", options=options) as output:
            encoder = _ChunkEncoder(output, settings, time_base, rate, color, segment, progress)
            batches = decode_segment(
                input_path, segment, batch_size, smoothing is not None, run_size
            )
            with _Prefetched(batches, PREFETCH) as decoded, _Behind(PREFETCH) as encoding:
                for frames, rgb, is_warmup in decoded:
                    styled = _check_output(stylize(rgb), rgb)
                    if not is_warmup:
                        encoding.submit(encoder.encode, frames, styled)
            if encoder.stream is None:
                raise MediaError(f"{input_path}: segment {segment.index} holds no frames")
            encoder.flush()
        os.replace(partial, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return encoder.done


def _checked_size(answer: object, size: tuple[int, int]) -> tuple[int, int] | None:
    """``network_size``'s answer for a video of ``size``: None when no scaling is needed."""
    if answer is None or answer == size:
        return None
    if not (
        isinstance(answer, tuple)
        and len(answer) == 2
        and all(isinstance(side, int) and side > 0 for side in answer)
    ):
        raise UsageError(
            f"network_size must return (width, height) as two positive integers or None, "
            f"got {answer!r} for a {size[0]}x{size[1]} video"
        )
    return answer


PREFETCH = 2
"""Batches decoded ahead of, and waiting to be encoded behind, the network."""

_END = object()


class _Prefetched:
    """Iterate ``items`` with a thread computing up to ``depth`` of them ahead, in order.

    The source is only ever advanced by that one thread, one step at a time; on exit, steps
    not yet started are dropped, the running one is waited for, and the source is closed
    (a generator's ``finally`` blocks run: files close)."""

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        self._items = items
        self._depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._ahead: deque[Future[Any]] = deque()

    def __enter__(self) -> Iterator[Any]:
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        while True:
            while len(self._ahead) < self._depth:
                self._ahead.append(self._pool.submit(next, self._items, _END))
            item = self._ahead.popleft().result()
            if item is _END:
                return
            yield item

    def __exit__(self, *exc: object) -> None:
        for future in self._ahead:
            future.cancel()
        self._pool.shutdown(wait=True)
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class _Behind:
    """Run submitted calls in order on one thread, at most ``depth`` waiting; the first
    error is raised at the next ``submit`` or on a clean exit, and later calls are dropped."""

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="encode")
        self._pending: deque[Future[Any]] = deque()

    def __enter__(self) -> _Behind:
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        while self._pending and (len(self._pending) >= self._depth or self._pending[0].done()):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)


class _ChunkEncoder:
    """Encodes stylized batches into the chunk's video stream, created on the first batch."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        settings: EncoderSettings,
        time_base: Fraction,
        rate: Fraction | None,
        color: dict[str, int],
        segment: Segment,
        progress: Progress | None,
    ) -> None:
        self.output, self.settings, self.color = output, settings, color
        self.time_base, self.rate = time_base, rate
        self.segment, self.progress = segment, progress
        self.stream: av.video.stream.VideoStream | None = None
        self.reformatter = VideoReformatter()
        self.scaler = VideoReformatter()  # its own: a scaler is rebuilt when its job changes
        self.done = 0

    def encode(self, frames: list[av.VideoFrame], styled: np.ndarray) -> None:
        width, height = frames[0].width, frames[0].height
        if self.stream is None:
            self.stream = add_video_stream(
                self.output, self.settings, width=width, height=height,
                time_base=self.time_base, rate=self.rate,
            )  # fmt: skip
            _tag_colors(self.stream, self.color)
            if frames[0].rotation:
                self.stream.set_display_rotation(frames[0].rotation)
        stream = self.stream
        for source_frame, picture in zip(frames, styled, strict=True):
            frame = _encodable(
                picture, (width, height), stream, self.color, self.reformatter, self.scaler
            )
            frame.pts = source_frame.pts
            frame.duration = source_frame.duration
            frame.time_base = self.time_base
            self.output.mux(stream.encode(frame))
        self.done += len(frames)
        if self.progress is not None:
            self.progress(self.done, self.segment.frame_count)

    def flush(self) -> None:
        assert self.stream is not None
        self.output.mux(self.stream.encode(None))


def _check_output(styled: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    if not isinstance(styled, np.ndarray) or styled.shape != rgb.shape:
        shape = getattr(styled, "shape", type(styled).__name__)
        raise UsageError(f"stylize must return an array of shape {rgb.shape}, got {shape}")
    if styled.dtype != np.uint8:
        raise UsageError(f"stylize must return uint8 frames, got {styled.dtype}")
    return styled


def _encodable(
    picture: np.ndarray,
    size: tuple[int, int],
    stream: av.video.stream.VideoStream,
    color: dict[str, int],
    reformatter: VideoReformatter,
    scaler: VideoReformatter,
) -> av.VideoFrame:
    """An RGB picture as a frame of the video's ``size`` (width, height), in the encoder's
    size and pixel format: scaled and converted in one pass when only the format needs the
    full size; an odd side (4:2:0) is first scaled, then padded by its edge pixels."""
    width, height = size
    pad_h, pad_w = stream.height - height, stream.width - width
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    if (pad_h or pad_w) and picture.shape[:2] != (height, width):
        frame = scaler.reformat(frame, width=width, height=height, interpolation=SCALING)
        picture = frame.to_ndarray()
    if pad_h or pad_w:
        picture = np.pad(picture, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    return reformatter.reformat(
        frame,
        width=stream.width,
        height=stream.height,
        format=stream.pix_fmt,
        dst_colorspace=color["colorspace"],
        dst_color_range=color["color_range"],
        interpolation=SCALING,
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
