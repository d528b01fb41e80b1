"""The bare loop as a user's own script: ``python benchmarks/bare_score.py MODEL OUT FILE...``.

Reads each Parquet file with pyarrow, calls ``model.predict`` on its feature columns and
writes the key and the predictions as Parquet, one file per input, in one process. It imports
only what that needs (pandas, pyarrow, joblib and, through the model, scikit-learn), so that
``tabular.py --commands`` can time it as a command, from the interpreter's start to its exit,
beside ``batchscore endpoint invoke``; ``tabular.py`` times its loop in process as well.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = [f"f{i}" for i in range(8)]


def score_file(model: object, path: Path, dest: Path) -> None:
    """One file, one model: read, predict, write the key and the predictions."""
    frame = pq.read_table(path).to_pandas()
    pred = pd.DataFrame({"id": frame["id"],
                         "prediction": model.predict(frame[FEATURES])})  # type: ignore[attr-defined]
    pq.write_table(pa.Table.from_pandas(pred, preserve_index=False), dest)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: bare_score.py MODEL OUT FILE...", file=sys.stderr)
        return 2
    model = joblib.load(argv[0])
    out = Path(argv[1])
    out.mkdir(parents=True)
    for i, path in enumerate(argv[2:]):
        score_file(model, Path(path), out / f"part-{i:05d}.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
