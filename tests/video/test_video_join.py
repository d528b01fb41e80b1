"""join_chunks(): packet-level concatenation, audio copied as is, atomic output."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import pytest

from batchscore.errors import InputError, MediaError, UsageError
from batchscore.video import EncoderSettings, join_chunks, plan_segments, probe, render_segment

BFRAMES = EncoderSettings(preset="veryfast", bframes=3)


def _chunks(clip: Path, folder: Path, target: int, settings=BFRAMES) -> list[Path]:
    paths = []
    for segment in plan_segments(probe(clip), target):
        path = folder / f"chunk{segment.index}.mp4"
        render_segment(clip, segment, lambda f: f, path, settings)
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("name", "target", "count"),
    [("ntsc", 12, 3), ("vfr", 10, 3), ("ntsc", 7, 5), ("vfr", 4, 8)],  # at keyframes, mid-GOP
)
def test_b_frames_across_chunk_boundaries(
    clips: dict[str, Path], tmp_path: Path, name: str, target: int, count: int
) -> None:
    chunks = _chunks(clips[name], tmp_path, target)
    assert len(chunks) == count
    output = tmp_path / "out.mp4"
    join_chunks(chunks, clips[name], output)
    with av.open(str(output)) as container:
        packets = [(p.pts, p.dts) for p in container.demux(video=0) if p.size]
    with av.open(str(output)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    dts = [d for _, d in packets]
    assert all(a < b for a, b in itertools.pairwise(dts)), dts
    assert any(p != d for p, d in packets), "the encoder used no B-frames; the test is moot"
    assert all(d <= p for p, d in packets)
    source, joined = probe(clips[name]), probe(output)
    assert [t * joined.time_base for t in joined.frame_pts] == [
        t * source.time_base for t in source.frame_pts
    ]
    assert joined.duration == source.duration
    assert decoded == source.frame_count


def test_chunks_from_other_settings_are_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    first = _chunks(clips["ntsc"], tmp_path / "a", 24)
    other = _chunks(clips["ntsc"], tmp_path / "b", 24, EncoderSettings(preset="ultrafast"))
    output = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="encoded with other settings"):
        join_chunks([first[0], other[1]], clips["ntsc"], output)
    assert not output.exists() and not list(tmp_path.glob("*.partial"))


def test_chunks_out_of_order_are_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    chunks = _chunks(clips["ntsc"], tmp_path, 12)
    output = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="chunks overlap or are out of order"):
        join_chunks([chunks[1], chunks[0], chunks[2]], clips["ntsc"], output)
    assert not output.exists() and not list(tmp_path.glob("*.partial"))


def test_a_mov_output(clips: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "out.mov"
    join_chunks(_chunks(clips["rotated"], tmp_path, 5), clips["rotated"], output)
    info = probe(output)
    assert info.frame_count == 20 and info.rotation == 90


def test_bad_joins(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least one chunk"):
        join_chunks([], clips["ntsc"], tmp_path / "out.mp4")
    with pytest.raises(InputError, match=r"missing\.mp4 does not exist"):
        join_chunks([tmp_path / "missing.mp4"], clips["ntsc"], tmp_path / "out.mp4")
    chunk = _chunks(clips["tiny"], tmp_path, 5)
    with pytest.raises(UsageError, match=r"must end in .mp4, .m4v, .mov, got '.avi'"):
        join_chunks(chunk, clips["tiny"], tmp_path / "out.avi")
