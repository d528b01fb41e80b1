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
    are copied with pts unchanged. Decode timestamps are assigned afresh over the whole
    stream (each chunk's encoder delays them by its own amount, so they would not line up
    at the boundaries), and the last packets' durations are set so that the video stream
    lasts as long as the original's. The chunks are read twice, one packet at a time. All
    chunks must share extradata and time base, i.e. one encoder setting.
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

    Packet durations are set so that the stream lasts ``duration`` seconds (the original's).
    FFmpeg reads an MP4 video stream's duration as the shorter of the sample table's span
    (decode timestamps plus the last packet's duration) and the edit list's (the latest
    ``pts + duration`` of any packet, from the first pts), so the last packet in decode order
    ends the sample table exactly at ``duration`` and no packet reaches past it in the edit
    list, except that the last frame shown does reach it.
    """
    depth, first_pts, last_pts = _scan_chunks(chunks, extradata)
    held: av.Packet | None = None
    first_dts: int | None = None
    end: int | None = None
    for packet in _retimed(_chunk_packets(chunks), depth, first_pts):
        assert packet.pts is not None and packet.dts is not None
        if first_dts is None:
            first_dts = packet.dts
            if duration is not None:
                end = first_pts + round(duration / packet.time_base)
        if end is not None and (packet.pts == last_pts or packet.pts + packet.duration > end):
            packet.duration = max(1, end - packet.pts)
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


def _scan_chunks(chunks: list[Path], extradata: bytes | None) -> tuple[int, int, int]:
    """Check that the chunks fit together; return (reorder depth, first pts, last pts).

    The reorder depth is the most frames any packet is decoded ahead of its place in
    presentation order (0 without B-frames); each chunk is read once, holding one chunk's
    timestamps at a time.
    """
    depth = 0
    first_pts: int | None = None
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
            pts = [p.pts for p in container.demux(stream) if _usable(p)]
        if not pts:
            continue
        if last_pts is not None and min(pts) <= last_pts:
            raise MediaError(
                f"chunk {number} ({chunk}) starts at pts {min(pts)}, not after the "
                f"previous chunk's last frame ({last_pts}); chunks overlap or are out of order"
            )
        rank = {value: i for i, value in enumerate(sorted(pts))}
        depth = max([depth, *(i - rank[value] for i, value in enumerate(pts))])
        first_pts = min(pts) if first_pts is None else first_pts
        last_pts = max(pts)
    if first_pts is None or last_pts is None:
        raise MediaError(f"chunks {chunks[0]}... hold no video packets")
    return depth, first_pts, last_pts


def _usable(packet: av.Packet) -> bool:
    return packet.size > 0 and packet.pts is not None and packet.dts is not None


def _chunk_packets(chunks: list[Path]) -> Iterator[av.Packet]:
    for chunk in chunks:
        with open_input(chunk) as container:
            for packet in container.demux(video_stream(container)):
                if _usable(packet):
                    yield packet


def _retimed(packets: Iterator[av.Packet], depth: int, first: int) -> Iterator[av.Packet]:
    """The packets with decode timestamps made consistent across chunk boundaries.

    Each chunk's encoder delays decode timestamps by its own amount (x264 picks it per
    chunk: a short chunk may have no B-frames at all), so the chunks' own dts do not line
    up. As an encoder does, the packet decoded ``i``-th gets the ``i - depth``-th smallest
    pts (the first ``depth`` packets get the ticks just before ``first``, the smallest pts):
    dts then increase, never exceed their pts, and end as early as they can. Holds
    ``depth`` + 1 timestamps.
    """
    waiting: list[int] = []  # pts seen and not yet handed out as a dts
    for i, packet in enumerate(packets):
        assert packet.pts is not None
        heapq.heappush(waiting, packet.pts)
        packet.dts = first - (depth - i) if i < depth else heapq.heappop(waiting)
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
