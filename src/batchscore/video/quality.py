"""The quality of a styled video, measured on a few sampled moments, and its contact sheet.

Three figures, each per sampled frame and summarised (``docs/video.md`` says why these):

- **content kept**: the correlation between the gradient magnitudes of the input's and the
  output's luminance, both scaled to ``CONTENT_WIDTH`` (640) pixels wide. 1 keeps every
  edge where it was and as strong relative to the others; 0 keeps none. Colours and
  brightness changed by the style do not count, only where the structure is.
- **style matched**: how much closer the output frame's style embedding (the 100-number
  vector of ``arbitrary_predict.onnx``) is to the style's than the input frame's is:
  ``1 - d(output, style) / d(input, style)``, Euclidean distances. 0: the output is no
  closer to the style than the input; 1: its embedding is the style's. The style's
  embedding is the style picture's, or, for the 26 built-in styles, the reference shipped
  with the package (``references.py``); a blend uses the blend of the references.
- **temporal consistency**: the warping error (Lai et al. 2018) of the output and of the
  input on the same pairs of consecutive frames (``warping_error_pair``); the output's
  divided by the input's says how much more it flickers than the scene moves. Needs
  OpenCV (``opencv-python-headless``); without it the figure is left out, and said so.

Only ``SAMPLES`` moments are decoded (each frame and the one before it, from both files),
so the report costs about the same for a minute of video as for an hour.
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from batchscore.models.arbitrary import predict_style_vector
from batchscore.models.assets import builtin_model_path
from batchscore.models.multistyle import parse_style_weights
from batchscore.models.runtime import RuntimeOptions, create_session
from batchscore.video.probe import VideoInfo, open_input, probe, video_stream

__all__ = [
    "CONTENT_WIDTH",
    "SAMPLES",
    "StyleMeter",
    "contact_sheet",
    "content_kept",
    "headline",
    "measure_video",
    "read_frames",
    "reference_for",
    "report_paths",
    "run_isolated",
    "sample_indices",
    "warping_error",
    "warping_error_pair",
]

CONTENT_WIDTH = 640
SAMPLES = 6
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --- content kept -----------------------------------------------------------------------------


def _to_width(picture: np.ndarray, width: int) -> np.ndarray:
    height = max(1, round(picture.shape[0] * width / picture.shape[1]))
    if picture.shape[:2] == (height, width):
        return picture
    return np.asarray(Image.fromarray(picture).resize((width, height), Image.Resampling.BICUBIC))


def _gradient_magnitude(picture: np.ndarray) -> np.ndarray:
    luma = picture.astype(np.float32) @ _LUMA
    dy, dx = np.gradient(luma)
    return np.hypot(dx, dy)


def content_kept(source: np.ndarray, styled: np.ndarray, width: int = CONTENT_WIDTH) -> float:
    """Correlation of the gradient magnitudes of two H,W,3 uint8 RGB frames' luminance, both
    scaled to ``width`` pixels wide (bicubic); 0.0 when either has no edges at all."""
    a = _gradient_magnitude(_to_width(source, width)).ravel()
    b = _gradient_magnitude(_to_width(styled, width)).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / norm) if norm > 0 else 0.0


# --- style matched ----------------------------------------------------------------------------


def reference_for(model_spec: Mapping[str, Any]) -> np.ndarray | None:
    """The style embedding a model's output is compared with: the style picture's vector
    (``arbitrary``), the blend of the shipped references (``multistyle``), or None for a
    user's ONNX model, whose style the package does not know."""
    kind = model_spec.get("kind")
    if kind == "arbitrary":
        return np.asarray(model_spec["style_vector"], dtype=np.float32)
    if kind == "multistyle":
        from batchscore.video.references import builtin_references

        style = model_spec.get("style", 0)
        if isinstance(style, Mapping):
            style = {int(k): float(v) for k, v in style.items()}
        weights = parse_style_weights(style)
        return (weights @ builtin_references()).astype(np.float32)
    return None


class StyleMeter:
    """Embeds frames with ``arbitrary_predict.onnx`` (one session) and scores them against
    ``reference``."""

    def __init__(self, reference: np.ndarray, runtime: RuntimeOptions | None = None) -> None:
        self.reference = np.asarray(reference, dtype=np.float32)
        self._session = create_session(builtin_model_path("arbitrary_predict"),
                                       runtime or RuntimeOptions(threads=1))

    def distance(self, picture: np.ndarray) -> float:
        vector = predict_style_vector(self._session, np.ascontiguousarray(picture))
        return float(np.linalg.norm(vector - self.reference))

    def __call__(self, source: np.ndarray, styled: np.ndarray) -> dict[str, float]:
        before, after = self.distance(source), self.distance(styled)
        matched = 1.0 - after / before if before > 0 else 0.0
        return {"style_matched": matched, "style_distance": after,
                "input_style_distance": before}


# --- temporal consistency ---------------------------------------------------------------------


def _cv2() -> Any | None:
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def warping_error_pair(previous: np.ndarray, current: np.ndarray, source_previous: np.ndarray,
                       source_current: np.ndarray) -> float:
    """The occlusion-masked mean squared difference (RGB in 0..1) between ``current`` and
    ``previous`` warped onto it by the optical flow of the *source* frames (Lai et al.
    2018): OpenCV's Farneback flow, not the DIS flow that temporal smoothing blends with, so
    that the figure does not grade smoothing by its own flow; pixels where forward and
    backward flow disagree (occluded or newly visible) and pixels warped from outside the
    frame are left out."""
    return _warped_difference(previous, current, _flow_maps(source_previous, source_current))


def _flow_maps(source_previous: np.ndarray, source_current: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map_x, map_y, mask): where each pixel of the current frame was in the previous one,
    and which pixels count (see ``warping_error_pair``)."""
    cv2 = _cv2()
    if cv2 is None:
        raise ImportError("the warping error needs OpenCV: pip install opencv-python-headless")
    height, width = source_current.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))  # fmt: skip
    gray_prev = cv2.cvtColor(source_previous, cv2.COLOR_RGB2GRAY)
    gray = cv2.cvtColor(source_current, cv2.COLOR_RGB2GRAY)
    flow = cv2.calcOpticalFlowFarneback
    backward = flow(gray, gray_prev, None, 0.5, 4, 15, 3, 5, 1.2, 0)  # current -> previous
    forward = flow(gray_prev, gray, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    map_x, map_y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR)
    mismatch = np.sum((backward + forward_there) ** 2, -1)
    bound = 0.01 * (np.sum(backward**2, -1) + np.sum(forward_there**2, -1)) + 0.5
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return map_x, map_y, (mismatch < bound) & inside


def _warped_difference(previous: np.ndarray, current: np.ndarray,
                       maps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    import cv2

    map_x, map_y, mask = maps
    warped = cv2.remap(previous, map_x, map_y, cv2.INTER_LINEAR)
    diff = (current.astype(np.float32) - warped.astype(np.float32)) / 255.0
    return float((np.sum(diff**2, -1) * mask).sum() / max(1, 3 * mask.sum()))


def warping_error(output: np.ndarray, source: np.ndarray) -> float:
    """Mean ``warping_error_pair`` over every pair of consecutive frames (N,H,W,3 arrays)."""
    return float(np.mean([
        warping_error_pair(output[t - 1], output[t], source[t - 1], source[t])
        for t in range(1, len(source))
    ]))  # fmt: skip


# --- sampling and reading frames --------------------------------------------------------------


def sample_indices(frame_count: int, samples: int = SAMPLES) -> list[int]:
    """``samples`` frame indices spread evenly over a video (the middle of each of
    ``samples`` equal stretches), never the first frame, which has no frame before it."""
    if frame_count < 2:
        return []
    samples = max(1, min(samples, frame_count - 1))
    picked = {min(frame_count - 1, max(1, int((k + 0.5) * frame_count / samples)))
              for k in range(samples)}
    return sorted(picked)


def read_frames(path: str | Path, indices: Iterable[int], info: VideoInfo | None = None
                ) -> dict[int, np.ndarray]:
    """The frames at ``indices`` (presentation order) as H,W,3 uint8 RGB arrays.

    Decodes forward from the keyframe before each wanted frame, seeking only when the next
    wanted frame lies past another keyframe, so a handful of frames costs a handful of
    groups of pictures, not the whole video. ``info``: the file's probe, when already made."""
    info = info or probe(path)
    wanted = sorted({i for i in indices if 0 <= i < info.frame_count})
    by_pts = {info.frame_pts[i]: i for i in wanted}
    keyframes = sorted(info.keyframe_pts) or [info.frame_pts[0]]
    found: dict[int, np.ndarray] = {}
    with open_input(path) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        frames: Any = None
        position: int | None = None
        for index in wanted:
            if index in found:
                continue
            pts = info.frame_pts[index]
            key = keyframes[max(0, bisect.bisect_right(keyframes, pts) - 1)]
            if frames is None or position is None or key > position or pts <= position:
                container.seek(key, stream=stream, backward=True)
                frames = container.decode(stream)
            for frame in frames:
                if frame.pts is None:
                    continue
                position = frame.pts
                if frame.pts in by_pts:
                    found[by_pts[frame.pts]] = frame.to_ndarray(format="rgb24")
                if frame.pts >= pts:
                    break
    return found


# --- the report -------------------------------------------------------------------------------


def report_paths(output: str) -> tuple[str, str]:
    """Where the report and the contact sheet of ``output`` go: beside it."""
    return f"{output}.quality.json", f"{output}.contact.png"


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def measure_video(
    input_path: str | Path,
    output_path: str | Path,
    model_spec: Mapping[str, Any] | None = None,
    *,
    samples: int = SAMPLES,
    settings: Mapping[str, Any] | None = None,
    timing: Mapping[str, Any] | None = None,
    info: VideoInfo | None = None,
) -> tuple[dict[str, Any], list[tuple[int, np.ndarray, np.ndarray]]]:
    """Measure a styled video against its input at ``samples`` moments.

    Returns the report (plain JSON data) and the sampled (index, input, output) frames for
    the contact sheet. ``model_spec`` (the job's model) gives the style's reference;
    ``settings`` and ``timing`` are recorded as given; ``info``: the input's probe."""
    started = time.perf_counter()
    info = info or probe(input_path)
    out_info = probe(output_path)
    if out_info.frame_count != info.frame_count:
        raise ValueError(f"{output_path} holds {out_info.frame_count} frames, its input "
                         f"{input_path} {info.frame_count}")
    picked = sample_indices(info.frame_count, samples)
    needed = sorted({j for i in picked for j in (i - 1, i)})
    sources = read_frames(input_path, needed, info)
    outputs = read_frames(output_path, needed, out_info)
    reference = reference_for(model_spec) if model_spec is not None else None
    style = StyleMeter(reference) if reference is not None else None
    cv2 = _cv2()
    rate = float(info.average_rate) if info.average_rate else None
    rows = [_measure_frame(index, sources, outputs, rate, style, cv2) for index in picked]
    shown = [(index, sources[index], outputs[index]) for index in picked]
    report = {
        "version": 1,
        "input": str(input_path),
        "output": str(output_path),
        "video": {"width": info.width, "height": info.height, "frames": info.frame_count,
                  "fps": rate},
        "settings": dict(settings or {}),
        "time": dict(timing or {}),
        "summary": _summary(rows),
        "frames": rows,
        "notes": _notes(style is not None, cv2 is not None),
        "measures": dict(_MEASURES),
        "sampled_frames": len(rows),
        "report_seconds": None,
    }
    report["report_seconds"] = round(time.perf_counter() - started, 2)
    return report, shown


# What each figure of a report means (the report carries it).
_MEASURES = {
    "content_kept": f"correlation of luminance gradient magnitudes, input against "
    f"output, both {CONTENT_WIDTH} px wide (1: every edge kept)",
    "style_matched": "1 - d(output, style) / d(input, style), Euclidean distances "
    "between arbitrary_predict.onnx style embeddings (1: the style's embedding; 0: "
    "no closer to the style than the input)",
    "warping_error": "mean squared difference (RGB 0..1) between each sampled frame "
    "and the one before warped onto it by the input's optical flow, non-occluded "
    f"pixels, at most {CONTENT_WIDTH} px wide; input_warping_error: the same on the "
    "input (what the scene's motion alone gives)",
}


def _measure_frame(index: int, sources: Mapping[int, np.ndarray],
                   outputs: Mapping[int, np.ndarray], rate: float | None,
                   style: StyleMeter | None, cv2: Any | None) -> dict[str, Any]:
    """The report's row of frame ``index``: content kept, the style's match (given a
    reference) and the warping errors against the frame before (given OpenCV)."""
    source, styled = sources[index], outputs[index]
    row: dict[str, Any] = {
        "frame": index,
        "time": round(index / rate, 3) if rate else None,
        "content_kept": round(content_kept(source, styled), 4),
    }
    if style is not None:
        row.update({k: round(v, 4) for k, v in style(source, styled).items()})
    if cv2 is not None:
        small = [_to_width(f, min(CONTENT_WIDTH, f.shape[1])) for f in (
            outputs[index - 1], styled, sources[index - 1], source)]
        maps = _flow_maps(small[2], small[3])
        row["warping_error"] = round(_warped_difference(small[0], small[1], maps), 6)
        row["input_warping_error"] = round(_warped_difference(small[2], small[3], maps), 6)
    return row


def _summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sampled frames' means, and the flicker ratio (output's warping error over the
    input's) when both are known."""
    summary: dict[str, Any] = {
        "content_kept": _round(_mean([r["content_kept"] for r in rows]), 4),
        "style_matched": _round(_mean([r.get("style_matched") for r in rows]), 4),
        "style_distance": _round(_mean([r.get("style_distance") for r in rows]), 4),
        "input_style_distance": _round(_mean([r.get("input_style_distance") for r in rows]), 4),
        "warping_error": _round(_mean([r.get("warping_error") for r in rows]), 6),
        "input_warping_error": _round(_mean([r.get("input_warping_error") for r in rows]), 6),
    }
    if summary["warping_error"] is not None and summary["input_warping_error"]:
        summary["flicker_ratio"] = round(summary["warping_error"]
                                         / summary["input_warping_error"], 2)
    return summary


def _notes(styled: bool, opencv: bool) -> list[str]:
    """What the report could not measure, and why."""
    notes = []
    if not styled:
        notes.append("style matched: no reference embedding for a user's ONNX model")
    if not opencv:
        notes.append("temporal consistency: needs OpenCV (pip install opencv-python-headless)")
    return notes


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def headline(report: Mapping[str, Any]) -> str:
    """One line of the figures that matter, for the CLI and the sheet."""
    s = report.get("summary", {})
    if s.get("content_kept") is None:
        return "not measured: the video has no frame after its first"
    parts = [f"content kept {s['content_kept']:.2f}"]
    if s.get("style_matched") is not None:
        parts.append(f"style matched {s['style_matched']:.2f}")
    if s.get("warping_error") is not None:
        parts.append(f"warping error {s['warping_error']:.5f} (input "
                     f"{s['input_warping_error']:.5f}, {s.get('flicker_ratio', 0):.1f}x)")
    return ", ".join(parts)


def _settings_line(report: Mapping[str, Any]) -> str:
    st = report.get("settings", {})
    size = st.get("network_size")
    parts = [f"style {st.get('style', '?')}", f"strength {st.get('strength', 1.0):g}",
             f"max-size {st.get('max_size') or 'video size'}"
             + (f" (network {size[0]}x{size[1]})" if size else ""),
             "smoothing " + ("on" if st.get("smoothing") else "off")]
    t = report.get("time", {})
    if t.get("seconds") is not None:
        parts.append(f"{t['seconds']:.1f} s ({t.get('frames_per_second') or 0:.1f} frames/s)")
    return ", ".join(parts)


def contact_sheet(report: Mapping[str, Any], frames: Sequence[tuple[int, np.ndarray, np.ndarray]],
                  *, width: int = 480, rows: int = 4) -> Image.Image:
    """Input and output side by side at up to ``rows`` of the sampled moments, each row
    captioned with its figures, under a header with the settings and the summary."""
    if len(frames) > rows:  # spread over the samples
        step = (len(frames) - 1) / (rows - 1) if rows > 1 else 0
        frames = [frames[round(k * step)] for k in range(rows)]
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    height = round(width * report["video"]["height"] / report["video"]["width"])
    pad, caption, header = 8, 22, 64
    sheet = Image.new("RGB", (2 * width + 3 * pad, header + len(frames) * (height + caption + pad)
                              + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), _settings_line(report), fill="black", font=font)
    draw.text((pad, 26), headline(report), fill="black", font=font)
    draw.text((pad, 46), "left: input   right: output", fill=(90, 90, 90), font=small)
    by_frame = {r["frame"]: r for r in report.get("frames", [])}
    y = header
    for index, source, styled in frames:
        row = by_frame.get(index, {})
        text = f"frame {index}" + (f" ({row['time']:.1f} s)" if row.get("time") is not None
                                   else "")
        text += f": content kept {row.get('content_kept', float('nan')):.2f}"
        if row.get("style_matched") is not None:
            text += f", style matched {row['style_matched']:.2f}"
        if row.get("warping_error") is not None:
            text += f", warping error {row['warping_error']:.5f}"
        draw.text((pad, y + 3), text, fill="black", font=small)
        for k, picture in enumerate((source, styled)):
            tile = Image.fromarray(picture).resize((width, height), Image.Resampling.BICUBIC)
            sheet.paste(tile, (pad + k * (width + pad), y + caption))
        y += height + caption + pad
    return sheet


def write_report(report: Mapping[str, Any],
                 frames: Sequence[tuple[int, np.ndarray, np.ndarray]],
                 json_path: str | Path, png_path: str | Path) -> None:
    """Write the report and its contact sheet (each under a temporary name, then renamed)."""
    json_path, png_path = Path(json_path), Path(png_path)
    tmp = json_path.with_name(f".{json_path.name}.partial")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(json_path)
    tmp = png_path.with_name(f".{png_path.name}.partial")
    contact_sheet(report, frames).save(tmp, format="PNG")
    tmp.replace(png_path)


def run_isolated(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a fresh (spawned) process, its result or its exception returned here.

    The job's driver forks its worker processes; OpenCV's thread pool and onnxruntime's
    threads, once started in the driver, can leave a forked worker waiting forever on a lock
    that a thread of the parent held at the fork (a dead-worker test hung that way). Measuring
    in a process of its own keeps the driver free of both."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
