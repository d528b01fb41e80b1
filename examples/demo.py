"""`make demo`: a batch job on embedded defaults, end to end, with the commands a user types.

Creates a workspace, generates images, and runs the image-files example's Azure ML style
scoring script over them in parallel mini-batches; prints where the output and logs are.

Example:
    python examples/demo.py --out demo-output
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sh(*args: str) -> None:
    print(f"$ {shlex.join(args)}", flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    out = args.out.resolve()
    ws = out / ".batchscore"
    cli = [sys.executable, "-m", "batchscore"]
    sh(*cli, "init", "-w", str(ws))
    sh(sys.executable, str(HERE / "image-files" / "make_data.py"), str(out / "images"),
       "--count", str(args.images))
    sh(*cli, "job", "run", str(HERE / "image-files" / "deployment.yml"),
       "-i", str(out / "images"), "-o", str(out / "results"), "-w", str(ws), "--overwrite")
    results = out / "results" / "results.txt"
    lines = results.read_text().splitlines()
    print(f"\n{len(lines)} results in {results}; the first three:")
    for line in lines[:3]:
        print(f"  {line}")
    print(f"logs: batchscore job list -w {ws}  /  batchscore job logs ID -w {ws}")


if __name__ == "__main__":
    main()
