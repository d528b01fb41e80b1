"""Video encoding choices: x264 presets on stylized frames, and segment size on a short clip.

presets: the first 48 frames of bigbuckbunny at 1280x720 stylized once (style 7, max_size
512); each preset then encodes them at crf 18 (as the pipeline's chunks are encoded), and is
reported against ``medium`` measured in the same run: encode time ratio, PSNR against the
uncompressed stylized frames in yuv420p, file size ratio. Repetitions interleaved; medians.

segments: the whole clip through the video job (1 worker) at 640x360 with max_size 512 and
at 1280x720 with max_size 256, with ``segment_frames`` 33 (the default for 132 frames and 1
worker before segments were kept to 100 frames or more), 66 and 132 (the default now: one
segment), each as a ratio to the network alone on the same frames (efficiency, as in
video.py) and as job time against one segment's, interleaved.

Example:
    .venv/bin/python benchmarks/video_encoding.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

import video as bench  # benchmarks/video.py (this script's folder): clips, model-only
from batchscore import run_job
from batchscore.models import model_from_spec
from batchscore.video.job import video_spec

PRESETS = ("medium", "faster", "veryfast", "superfast")


def encode(frames: np.ndarray, path: Path, preset: str) -> float:
    start = time.perf_counter()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18", "preset": preset})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for i, picture in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return time.perf_counter() - start


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


def presets(work: Path, repeat: int) -> dict[str, dict[str, float]]:
    clip = bench.make_clip(bench.find_bigbuckbunny(), work / "720p.mp4", 1280, 720, 48)
    model = model_from_spec({"kind": "multistyle", "style": "7", "max_size": 512,
                             "batch_size": 4, "threads": 2})
    rgb = bench.decode_rgb(clip)
    styled = np.concatenate([model.stylize(rgb[i : i + 8]) for i in range(0, len(rgb), 8)])
    reference = np.stack([av.VideoFrame.from_ndarray(p, format="rgb24").reformat(
        format="yuv420p").to_ndarray(format="rgb24") for p in styled])  # what 4:2:0 can hold
    seconds: dict[str, list[float]] = {p: [] for p in PRESETS}
    quality: dict[str, tuple[float, int]] = {}
    for _ in range(repeat):
        for preset in PRESETS:
            path = work / f"{preset}.mp4"
            seconds[preset].append(encode(styled, path, preset))
            quality[preset] = (psnr(bench.decode_rgb(path), reference), path.stat().st_size)
    base = seconds["medium"]
    return {p: {"encode_time_vs_medium": statistics.median(
                    [s / b for s, b in zip(seconds[p], base, strict=True)]),
                "psnr_db": quality[p][0], "kib": quality[p][1] / 1024,
                "size_vs_medium": quality[p][1] / quality["medium"][1]} for p in PRESETS}


def segments(work: Path, repeat: int) -> dict[str, dict[str, float]]:
    report: dict[str, dict[str, float]] = {}
    for width, height, max_size in [(640, 360, 512), (1280, 720, 256)]:
        name = f"{width}x{height} @{max_size}"
        clip = bench.make_clip(bench.find_bigbuckbunny(), work / f"{width}.mp4", width, height,
                               132)  # fmt: skip
        spec = {"kind": "multistyle", "style": "3:0.5,12:0.5", "max_size": max_size,
                "batch_size": 4, "threads": 2}  # fmt: skip
        rgb = bench.decode_rgb(clip)
        seconds: dict[int, list[float]] = {33: [], 66: [], 132: []}
        models: list[float] = []
        for _ in range(repeat):
            models.append(bench.model_only(rgb, spec))
            for frames in seconds:
                start = time.perf_counter()
                job = run_job(bench._workspace(),
                              video_spec(spec, workers=1, segment_frames=frames),
                              [str(clip)], str(work / "out.mp4"), overwrite=True)  # fmt: skip
                assert job.state == "succeeded", job.reason
                seconds[frames].append(time.perf_counter() - start)
            print(f"  {name}: model {models[-1]:.2f}s, "
                  + ", ".join(f"{k} frames {v[-1]:.2f}s" for k, v in seconds.items()), flush=True)
        row: dict[str, float] = {}
        for frames, times in seconds.items():
            row[f"efficiency_segment_frames_{frames}"] = statistics.median(
                m / t for m, t in zip(models, times, strict=True))
            row[f"time_vs_one_segment_{frames}"] = statistics.median(
                t / one for t, one in zip(times, seconds[132], strict=True))
        report[name] = row
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["presets", "segments"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, object] = {"command": " ".join([Path(sys.executable).name, *sys.argv])}
    with tempfile.TemporaryDirectory(prefix="bench-encoding-") as tmp:
        if "presets" not in args.skip:
            report["presets"] = presets(Path(tmp), args.repeat)
            for name, row in report["presets"].items():  # type: ignore[union-attr]
                print(f"{name:>9}: encode {row['encode_time_vs_medium']:.2f}x medium's time, "
                      f"PSNR {row['psnr_db']:.2f} dB, {row['kib']:.0f} KiB "
                      f"({row['size_vs_medium']:.2f}x)")
        if "segments" not in args.skip:
            report["segments"] = segments(Path(tmp), args.repeat)
            print(report["segments"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
