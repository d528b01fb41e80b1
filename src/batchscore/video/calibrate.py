"""Before a long job: what this setting will cost, and what a faster one would keep.

``calibrate`` runs the job's network on a few frames spread over the video (the session is
created first, outside the timing), at the job's network size and at the next smaller
size of ``FASTER_SIZES``, and measures frames/s and content kept (``quality.content_kept``)
for both on the same frames. The estimate is the network's time alone with all the cores
(the job's workers share them); decoding and encoding add to it (benchmarks/VIDEO.md: the
pipeline ran at 0.36 to 0.93 of the network's frames/s on two cores).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from batchscore.models.base import StyleModel, run_size
from batchscore.models.spec import model_from_spec
from batchscore.video.probe import VideoInfo, probe
from batchscore.video.quality import content_kept, read_frames, sample_indices

__all__ = ["FASTER_SIZES", "LONG_JOB_FRAMES", "Calibration", "Setting", "calibrate"]

LONG_JOB_FRAMES = 750
"""A job of at least this many frames (30 s at 25 fps) is calibrated before it starts."""
FASTER_SIZES = (1280, 1024, 768, 512, 384, 256)
"""The ``--max-size`` values offered as the faster setting (the largest below the job's)."""


@dataclass(frozen=True)
class Setting:
    max_size: int | None  # None: the video's own size
    network_size: tuple[int, int]
    frames_per_second: float
    content_kept: float

    def seconds(self, frames: int) -> float:
        return frames / self.frames_per_second


@dataclass(frozen=True)
class Calibration:
    frames: int  # the video's
    chosen: Setting
    faster: Setting | None

    def lines(self) -> list[str]:
        """What the CLI prints."""
        c = self.chosen
        size = f"{c.network_size[0]}x{c.network_size[1]}"
        lines = [f"calibration on {CALIBRATION_FRAMES} frames: the network at {size} runs "
                 f"{c.frames_per_second:.1f} frames/s here, so about "
                 f"{_duration(c.seconds(self.frames))} for {self.frames} frames (network "
                 f"time; decoding and encoding add to it); content kept {c.content_kept:.2f}"]
        if self.faster is not None:
            f = self.faster
            kept = f.content_kept / c.content_kept if c.content_kept > 0 else 0.0
            lines.append(f"faster: --max-size {f.max_size} would take about "
                         f"{_duration(f.seconds(self.frames))} "
                         f"({c.seconds(1) / f.seconds(1):.1f}x faster) and keep content "
                         f"{f.content_kept:.2f}, {100 * kept:.0f}% of this setting's")
        return lines


CALIBRATION_FRAMES = 4


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _measure(model: StyleModel, frames: np.ndarray) -> Setting:
    height, width = frames.shape[1:3]
    size = model.network_size(width, height) or run_size(width, height, model.max_size)
    small = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BICUBIC))
                      for f in frames])  # fmt: skip
    model.stylize(small[:1])  # the session, outside the timing
    start = time.perf_counter()
    styled = model.stylize(small)
    seconds = time.perf_counter() - start
    kept = [content_kept(f, np.asarray(Image.fromarray(s).resize(
        (width, height), Image.Resampling.BICUBIC))) for f, s in zip(frames, styled, strict=True)]
    return Setting(model.max_size, size, len(frames) / max(seconds, 1e-9),
                   float(np.mean(kept)))


def calibrate(input_path: str | Path, model_spec: dict[str, Any],
              info: VideoInfo | None = None) -> Calibration:
    """Time the network of ``model_spec`` (and the next faster size) on a few frames of
    ``input_path``; see the module's docstring."""
    info = info or probe(input_path)
    picked = sample_indices(info.frame_count, CALIBRATION_FRAMES)
    found = read_frames(input_path, picked, info)
    frames = np.stack([found[i] for i in picked])
    threads = os.cpu_count() or 1
    spec = {**model_spec, "threads": threads, "strength": 1.0}
    chosen = _measure(model_from_spec(spec), frames)
    long_side = max(chosen.network_size)
    faster_size = next((s for s in FASTER_SIZES if s < long_side), None)
    faster = None
    if faster_size is not None:
        faster = _measure(model_from_spec({**spec, "max_size": faster_size}), frames)
    return Calibration(info.frame_count, chosen, faster)
