"""Describe image files: size, mean colour, and dominant colour name, one line per file.

An Azure ML batch scoring script, run unchanged by `batchscore job run`: the engine calls
`init()` once per worker process, then `run(mini_batch)` with a list of local paths of PNG or
JPEG files. Each returned line is
`<file name> <width> <height> <mean R> <mean G> <mean B> <dominant colour name>`.
The "model" is a palette of named colours, `model/palette.json` under `AZUREML_MODEL_DIR`.
A file that is not a readable image raises, so that the engine retries and counts it failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

# Dominant colours are counted on a copy shrunk to at most this size (nearest neighbour, so
# pixel colours are kept); means are computed on every pixel.
DOMINANT_SIZE = (128, 128)

palette_names: list[str] = []
palette_rgb = np.zeros((0, 3), dtype=np.int32)


def init() -> None:
    """Load the colour palette once per worker."""
    global palette_names, palette_rgb
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "palette.json")
    with open(path, encoding="utf-8") as f:
        palette: dict[str, list[int]] = json.load(f)
    palette_names = list(palette)
    palette_rgb = np.array([palette[name] for name in palette_names], dtype=np.int32)


def run(mini_batch: list[str]) -> list[str]:
    """One line per input file, in input order."""
    if not palette_names:
        raise RuntimeError("run() called before init(): the palette is not loaded")
    return [describe(Path(path)) for path in mini_batch]


def describe(path: Path) -> str:
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file raises here, not later
            rgb = img.convert("RGB")
    except OSError as exc:
        raise ValueError(f"{path.name}: not a readable image: {exc}") from exc
    pixels = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    mean_r, mean_g, mean_b = pixels.mean(axis=0)
    width, height = rgb.size
    return (
        f"{path.name} {width} {height} {mean_r:.2f} {mean_g:.2f} {mean_b:.2f} "
        f"{dominant_colour(rgb)}"
    )


def dominant_colour(rgb: Image.Image) -> str:
    """The palette colour nearest to the most pixels (ties go to the first in the palette)."""
    small = rgb.copy()
    small.thumbnail(DOMINANT_SIZE, Image.Resampling.NEAREST)
    pixels = np.asarray(small, dtype=np.int32).reshape(-1, 1, 3)
    distances = ((pixels - palette_rgb[np.newaxis, :, :]) ** 2).sum(axis=2)
    counts = np.bincount(distances.argmin(axis=1), minlength=len(palette_names))
    return palette_names[int(counts.argmax())]
