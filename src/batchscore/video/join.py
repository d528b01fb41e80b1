"""Joining chunks into the final MP4, packet by packet, with the original audio copied as is."""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.stream

from batchscore.errors import InputError, MediaError, UsageError
from batchscore.video.encoding import mov_timescale
from batchscore.video.probe import first_frame_rotation, open_input, video_stream

__all__ = ["join_chunks"]

_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}


def join_chunks(
    chunk_paths: Sequence[str | Path],
    original_input: str | Path,
    output_path: str | Path,
    *,
    rotation: int | None = None,
) -> None:
    """Concatenate the chunks' video packets in order and copy the original's audio streams.

    Chunks hold the original timestamps (``render_segment`` keeps them), so their packets
    are copied with pts unchanged; a decode timestamp that would not increase across a chunk
    boundary (x264's B-frame delay at the start of each chunk) is moved just after the
    previous one. All chunks must share extradata and time base, i.e. one encoder setting.
    Audio packets are copied untouched (same codec, channels, packets) and interleaved by
    time. The rotation of the original (or ``rotation``) is written to the output. The file
    is written as ``<output>.partial`` and renamed when complete.
    """
    chunks = [Path(p) for p in chunk_paths]
    if not chunks:
        raise UsageError("join_chunks needs at least one chunk")
    for chunk in chunks:
        if not chunk.is_file():
            raise InputError(f"chunk {chunk} does not exist")
    output_path = Path(output_path)
    container_format = _FORMATS.get(output_path.suffix.lower())
    if container_format is None:
        raise UsageError(
            f"output {output_path} must end in {', '.join(_FORMATS)}, got {output_path.suffix!r}"
        )
    with open_input(original_input) as original:
        stream = video_stream(original)
        duration = None
        if stream.duration and stream.time_base:
            duration = Fraction(stream.duration) * stream.time_base
        if rotation is None:
            rotation = first_frame_rotation(original, stream)
    partial = output_path.with_name(f"{output_path.name}.partial")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write(chunks, Path(original_input), partial, container_format, rotation, duration)
        os.replace(partial, output_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _write(
    chunks: list[Path],
    original_input: Path,
    partial: Path,
    container_format: str,
    rotation: int,
    duration: Fraction | None,
) -> None:
    with open_input(chunks[0]) as first:
        template = video_stream(first)
        time_base = template.time_base or Fraction(1, 1)
        options = {"movie_timescale": str(mov_timescale(time_base)), "movflags": "+faststart"}
        with (
            open_input(original_input) as source,
            av.open(str(partial), "w", format=container_format, options=options) as output,
        ):
            video_out = output.add_stream_from_template(template)
            if rotation:
                video_out.set_display_rotation(rotation)
            audio_out = {
                a.index: _copy_stream(output, a, original_input) for a in source.streams.audio
            }
            video = _video_packets(chunks, template.codec_context.extradata, video_out, duration)
            audio = _audio_packets(source, audio_out)
            for packet in heapq.merge(video, audio, key=_decode_time):
                output.mux(packet)


def _decode_time(packet: av.Packet) -> Fraction:
    return (packet.dts or 0) * packet.time_base


def _copy_stream(
    output: av.container.OutputContainer, stream: av.stream.Stream, original_input: Path
) -> av.stream.Stream:
    try:
        copy = output.add_stream_from_template(stream)
    except ValueError as exc:
        raise MediaError(
            f"{original_input}: audio stream {stream.index} ({stream.codec_context.name}) "
            f"cannot be copied into {output.format.name}: {exc}"
        ) from None
    for key in ("language", "title", "handler_name"):
        if key in stream.metadata:
            copy.metadata[key] = stream.metadata[key]
    copy.disposition = stream.disposition
    return copy


def _video_packets(
    chunks: list[Path], extradata: bytes | None, out: av.stream.Stream, duration: Fraction | None
) -> Iterator[av.Packet]:
    """Every chunk's video packets in order, with increasing dts, bound to ``out``.

    The last packet's duration is set so that the stream lasts ``duration`` seconds (the
    original's): MP4 stores a sample's duration as the distance to the next decode timestamp,
    so only the last one is free, and the encoder's guess for it is not the original's.
    """
    held: av.Packet | None = None
    first_dts: int | None = None
    for packet in _chunk_packets(chunks, extradata):
        if first_dts is None:
            first_dts = packet.dts
        if held is not None:
            yield held
        packet.stream = out
        held = packet
    if held is None:
        raise MediaError(f"chunks {chunks[0]}... hold no video packets")
    if duration is not None and first_dts is not None and held.dts is not None:
        last = round(duration / held.time_base) - (held.dts - first_dts)
        if last > 0:
            held.duration = last
    yield held


def _chunk_packets(chunks: list[Path], extradata: bytes | None) -> Iterator[av.Packet]:
    last_dts: int | None = None
    last_pts: int | None = None
    time_base: Fraction | None = None
    for number, chunk in enumerate(chunks):
        with open_input(chunk) as container:
            stream = video_stream(container)
            if stream.codec_context.extradata != extradata:
                raise MediaError(
                    f"chunk {chunk} was encoded with other settings than {chunks[0]} "
                    "(its H.264 parameter sets differ); re-render it with the same settings"
                )
            if time_base is None:
                time_base = stream.time_base
            elif stream.time_base != time_base:
                raise MediaError(f"chunk {chunk} has time base {stream.time_base}, not {time_base}")
            chunk_start = True
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None or packet.dts is None:
                    continue
                if chunk_start and last_pts is not None and packet.pts <= last_pts:
                    raise MediaError(
                        f"chunk {number} ({chunk}) starts at pts {packet.pts}, not after the "
                        f"previous chunk's last frame ({last_pts}); chunks overlap or are out "
                        "of order"
                    )
                chunk_start = False
                if last_dts is not None and packet.dts <= last_dts:
                    if last_dts + 1 > packet.pts:
                        raise MediaError(f"chunk {chunk}: no room for a decode timestamp")
                    packet.dts = last_dts + 1
                last_dts = packet.dts
                last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
                yield packet


def _audio_packets(
    source: av.container.InputContainer, outputs: dict[int, av.stream.Stream]
) -> Iterator[av.Packet]:
    """The original's audio packets in file order, each bound to its copy."""
    if not outputs:
        return
    streams = [s for s in source.streams.audio if s.index in outputs]
    for packet in source.demux(*streams):
        if packet.size == 0 or packet.dts is None:
            continue
        packet.stream = outputs[packet.stream_index]
        yield packet
