"""Write the diabetes feature rows as a few CSV files with an `id` column.

`id` is the row's position in scikit-learn's bundled diabetes data set; the other columns
are the ten (scaled) features the model was trained on. The target is left out.

Example:
    python examples/diabetes-csv/make_data.py /tmp/diabetes-data --files 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes


def make_csv_files(folder: Path, files: int = 4) -> list[Path]:
    """Split the 442 rows into `files` files `part-NNN.csv` in order; return their paths."""
    features = load_diabetes(as_frame=True).data
    features.insert(0, "id", np.arange(len(features)))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(features)), files)):
        path = folder / f"part-{i:03d}.csv"
        features.iloc[rows].to_csv(path, index=False)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the CSV files")
    parser.add_argument("--files", type=int, default=4, help="how many files (default 4)")
    args = parser.parse_args(argv)
    paths = make_csv_files(args.folder, args.files)
    print(f"wrote {len(paths)} CSV files to {args.folder}")


if __name__ == "__main__":
    main()
