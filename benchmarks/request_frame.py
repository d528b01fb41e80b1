"""Turning a scoring request's rows into a typed DataFrame: serving.inputs.to_frame against the
row-wise construction it replaced (a DataFrame of the rows, then astype per column), on the
same rows, in the same run. One row and 100 rows of the diabetes columns (10 doubles).

Example:
    .venv/bin/python benchmarks/request_frame.py --calls 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from batchscore.serving.inputs import to_frame

SIGNATURE = [(name, "double") for name in
             ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")]


def row_wise(rows: list[list[float]]) -> pd.DataFrame:
    """The baseline: how to_frame built the frame before (after the same value checks)."""
    frame = pd.DataFrame(rows, columns=[name for name, _ in SIGNATURE])
    return frame.astype({name: "float64" for name, _ in SIGNATURE})


def per_call(fn, rows: list[list[float]], calls: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(calls):
        fn(rows)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for n in (1, 100):
        rows = [[0.01 * (i + j) for j in range(len(SIGNATURE))] for i in range(n)]
        pd.testing.assert_frame_equal(to_frame(rows, SIGNATURE), row_wise(rows))  # same frame
        new, old = [], []
        for _ in range(args.repeat):  # interleaved
            old.append(per_call(row_wise, rows, args.calls))
            new.append(per_call(lambda r: to_frame(r, SIGNATURE), rows, args.calls))
        ratio = statistics.median(o / w for o, w in zip(old, new, strict=True))
        print(f"{n:>3} row(s): to_frame {1000 * statistics.median(new):.3f} ms, row-wise "
              f"{1000 * statistics.median(old):.3f} ms per call: {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
