"""One tabular mini-batch, step by step: what a worker's read, score and part cost against
the bare pyarrow / scikit-learn calls that do the same work, in one warm process.

The end-to-end figures (``tabular.py``) move by 15-30% from one run to the next on a shared
machine; a mini-batch's steps, repeated in one process and interleaved, are steadier. Each
step is timed ``--repeat`` times, its baseline right after it, and the medians are printed
with their ratio (engine ÷ bare: 1.00 is no overhead):

* **read**: ``io.parquet.read_item`` (the planned item: its row groups, the model's columns,
  the frame indexed by row number) against ``ParquetFile(path).read_row_groups(...)
  .to_pandas()``;
* **score**: ``tabular.scoring.score_rows`` (value checks, missing values, the prediction
  frame) against ``model.predict(frame[features])``;
* **part**: ``tabular.writers.write_part`` (the job id column, a temporary name, the rename)
  against ``pq.write_table`` of the same key and prediction columns.

Example:
    .venv/bin/python benchmarks/tabular_steps.py --rows 131072 --repeat 60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import joblib
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batchscore.io import parquet
from batchscore.storage import Store
from batchscore.tabular.models import ModelLoader
from batchscore.tabular.scoring import score_rows
from batchscore.tabular.writers import write_part

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular import FEATURES, make_data, save_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=131_072, help="rows in the mini-batch")
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        [path] = make_data(root, args.rows * 2, 1, 1)  # two mini-batches: read the second
        models = save_models(root, 1)
        meta, _ = parquet.metadata(str(path))
        item = parquet.plan_row_groups(str(path), meta, args.rows, None)[1][0]
        columns = ["id", *FEATURES]
        first, last = item["row_groups"]
        groups = list(range(first, last + 1))
        loaded = ModelLoader(f"file://{root / 'registry'}", str(root / "scratch"),
                             roots=None).load(str(models))
        model = joblib.load(models / "model.joblib")
        store = Store(f"file://{root / 'system'}", "system")
        frame = parquet.read_item(item, columns)
        scored, _ = score_rows(loaded, frame, FEATURES, "prediction")
        out = pd.concat([frame[["id"]], scored], axis=1).reset_index(drop=True)
        bare_out = pa.Table.from_pandas(out, preserve_index=False)

        steps: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "read": (lambda: parquet.read_item(item, columns),
                     lambda: pq.ParquetFile(path).read_row_groups(groups, columns=columns)
                     .to_pandas()),
            "score": (lambda: score_rows(loaded, frame, FEATURES, "prediction"),
                      lambda: model.predict(frame[FEATURES])),
            "part": (lambda: write_part(store, "parts/p.parquet", out, "0" * 32),
                     lambda: pq.write_table(bare_out, root / "bare.parquet")),
        }
        times: dict[str, list[float]] = {f"{k}-{w}": [] for k in steps for w in ("job", "bare")}
        for _ in range(args.repeat):
            for name, (job, bare) in steps.items():
                for way, fn in (("job", job), ("bare", bare)):
                    start = time.perf_counter()
                    fn()
                    times[f"{name}-{way}"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    result = {
        "command": f"benchmarks/tabular_steps.py --rows {args.rows} --repeat {args.repeat}",
        "machine": f"{platform.node()} ({os.cpu_count()} vCPUs, Python "
                   f"{platform.python_version()})",
        "date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg(),
        "median_ms": med,
        "ratio_job_vs_bare": {k: med[f"{k}-job"] / med[f"{k}-bare"] for k in steps},
        "ms": {k: [round(x * 1e3, 4) for x in v] for k, v in times.items()},
    }
    for name in steps:
        print(f"{name:6s} job {med[f'{name}-job']:7.2f} ms   bare {med[f'{name}-bare']:7.2f} ms"
              f"   job / bare {result['ratio_job_vs_bare'][name]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
