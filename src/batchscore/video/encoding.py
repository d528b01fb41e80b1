"""Encoder settings shared by every chunk of a video, and the output stream they describe.

Chunks are joined packet by packet, so every chunk of one video must come from an encoder
with identical settings, size and time base: then the H.264 parameter sets (the stream's
extradata) are identical and one stream header serves all chunks. B-frames are allowed; the
join makes decode timestamps increase across chunk boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Any

import av
import av.container
import av.error
import av.video.stream

from batchscore.errors import UsageError

__all__ = ["X264_PRESETS", "EncoderSettings", "add_video_stream", "mov_timescale", "padded_size"]

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
_CHROMA_420 = {"yuv420p", "yuvj420p", "nv12", "yuv420p10le"}


@dataclass(frozen=True)
class EncoderSettings:
    """How chunks are encoded: H.264 (libx264), yuv420p, constant quality by default.

    ``crf`` and ``preset`` are x264's; ``bframes`` None keeps the preset's choice. The default
    preset is ``veryfast``: on stylized 720p frames at crf 18 it encodes about 2.3x faster
    than ``medium`` for 1 dB less PSNR (39.7 against 40.7 dB) and a 4% smaller file
    (benchmarks/VIDEO.md), where ``medium`` took about as long as the network itself.
    ``x264_params`` adds raw ``key=value:key=value`` options. With a 4:2:0 ``pix_fmt`` an odd
    width or height is padded by one repeated edge pixel (4:2:0 cannot hold odd sizes and
    stay playable everywhere); choose ``yuv444p`` to keep odd sizes exactly.
    """

    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    crf: int = 18
    preset: str = "veryfast"
    bframes: int | None = None
    x264_params: str = ""
    threads: int = 0

    def __post_init__(self) -> None:
        if self.codec not in ("libx264",):
            raise UsageError(f"video codec must be libx264, got {self.codec!r}")
        if self.codec not in av.codecs_available:
            raise UsageError(f"this FFmpeg build has no {self.codec} encoder")
        try:
            av.VideoFormat(self.pix_fmt)
        except (ValueError, av.error.FFmpegError):
            raise UsageError(f"unknown pixel format {self.pix_fmt!r}") from None
        if self.preset not in X264_PRESETS:
            raise UsageError(f"x264 preset must be one of {', '.join(X264_PRESETS)}, "
                             f"got {self.preset!r}")
        if not 0 <= self.crf <= 51:
            raise UsageError(f"crf must be 0 to 51, got {self.crf}")
        if self.bframes is not None and not 0 <= self.bframes <= 16:
            raise UsageError(f"bframes must be 0 to 16 or None, got {self.bframes}")
        if self.threads < 0:
            raise UsageError(f"threads must be 0 (automatic) or more, got {self.threads}")

    def codec_options(self) -> dict[str, str]:
        """The options handed to the encoder."""
        params = [p for p in self.x264_params.split(":") if p]
        if self.bframes is not None:
            params.append(f"bframes={self.bframes}")
        options = {"crf": str(self.crf), "preset": self.preset, "threads": str(self.threads)}
        if params:
            options["x264-params"] = ":".join(params)
        return options

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown encoder settings {unknown}; known are {sorted(known)}")
        return cls(**data)


def padded_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The encoded size: odd sides grow by one pixel for 4:2:0 formats."""
    if pix_fmt in _CHROMA_420:
        return width + width % 2, height + height % 2
    return width, height


def mov_timescale(time_base: Fraction) -> int:
    """The MP4 track timescale FFmpeg's muxer picks for a video stream with ``time_base``.

    Setting the movie timescale to the same value keeps the start offset of a stream that
    does not begin at 0 exact (it is written in movie units, milliseconds by default).
    """
    timescale = time_base.denominator
    while timescale < 10000:
        timescale *= 2
    return timescale


def add_video_stream(
    container: av.container.OutputContainer,
    settings: EncoderSettings,
    *,
    width: int,
    height: int,
    time_base: Fraction,
    rate: Fraction | None,
) -> av.video.stream.VideoStream:
    """Add the chunk encoder's stream: same settings, size and time base for every chunk."""
    stream = container.add_stream(settings.codec, rate=rate, options=settings.codec_options())
    assert isinstance(stream, av.video.stream.VideoStream)
    stream.width, stream.height = padded_size(width, height, settings.pix_fmt)
    stream.pix_fmt = settings.pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    return stream
