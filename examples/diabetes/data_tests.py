"""Data tests: the schema of the 10 features and the target, and shift against the reference.

Run alone with ``python data_tests.py [data.csv]``; the pipeline calls :func:`check`."""

from __future__ import annotations

import sys

import pandas as pd
import pandera.pandas as pa
from batchscore.mlops.datatests import run_checks

RANGES = {  # plausible ranges in the data's own units
    "age": (0, 120), "sex": (1, 2), "bmi": (10, 70), "bp": (40, 200), "s1": (50, 400),
    "s2": (20, 300), "s3": (10, 150), "s4": (1, 15), "s5": (2, 8), "s6": (40, 160),
    "target": (0, 400),
}

SCHEMA = pa.DataFrameSchema(
    {name: pa.Column(float, pa.Check.in_range(lo, hi), nullable=False)
     for name, (lo, hi) in RANGES.items()},
    strict=True, ordered=False,
)


def check(data: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """The problems found, one line per column (empty: the data passed)."""
    features = [c for c in RANGES if c != "target"]
    return run_checks(SCHEMA, data, reference, features)


if __name__ == "__main__":
    from data import load, reference

    frame = pd.read_csv(sys.argv[1]) if len(sys.argv) > 1 else load()
    found = check(frame, reference())
    print("\n".join(found) or "data tests passed")
    sys.exit(1 if found else 0)
