"""Train a Ridge regression on scikit-learn's bundled diabetes data set and save it.

Writes `<out>/model/model.joblib`, the layout that score.py reads: `<out>` plays the part of
`AZUREML_MODEL_DIR`. The data set ships inside the scikit-learn wheel; nothing is downloaded.

Example:
    python examples/diabetes-csv/train.py    # writes examples/diabetes-csv/model/model.joblib
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

HERE = Path(__file__).resolve().parent


def train(out: Path, alpha: float = 1.0) -> Path:
    """Fit the model on all 442 rows; return the path of the saved model."""
    data = load_diabetes(as_frame=True)
    model = Ridge(alpha=alpha).fit(data.data, data.target)
    path = out / "model" / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder that receives model/ (default: here)"
    )
    parser.add_argument("--alpha", type=float, default=1.0, help="Ridge penalty (default 1.0)")
    args = parser.parse_args(argv)
    print(f"wrote {train(args.out, args.alpha)}")


if __name__ == "__main__":
    main()
