"""Write small generated PNG images for the image-files example (deterministic for a seed).

Each image is filled with one palette colour, named in its file name, and carries three
random rectangles that together cover less than a fifth of it, so that the background is
the dominant colour.

Example:
    python examples/image-files/make_data.py /tmp/images --count 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = Path(__file__).resolve().parent / "model" / "palette.json"


def make_images(folder: Path, count: int = 20, seed: int = 0) -> list[Path]:
    """Write `count` images `img_NNNN_<colour>.png` into `folder`; return their paths."""
    palette: dict[str, list[int]] = json.loads(PALETTE.read_text(encoding="utf-8"))
    names = list(palette)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        name = names[i % len(names)]
        width, height = (int(n) for n in rng.integers(32, 97, size=2))
        pixels = np.empty((height, width, 3), dtype=np.uint8)
        pixels[:, :] = palette[name]
        for _ in range(3):  # each at most a quarter of each side: at most 1/16 of the area
            w = int(rng.integers(1, width // 4 + 1))
            h = int(rng.integers(1, height // 4 + 1))
            x = int(rng.integers(0, width - w + 1))
            y = int(rng.integers(0, height - h + 1))
            pixels[y : y + h, x : x + w] = rng.integers(0, 256, size=3, dtype=np.uint8)
        path = folder / f"img_{i:04d}_{name}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the images")
    parser.add_argument("--count", type=int, default=20, help="how many images (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    paths = make_images(args.folder, args.count, args.seed)
    print(f"wrote {len(paths)} images to {args.folder}")


if __name__ == "__main__":
    main()
