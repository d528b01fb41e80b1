"""Helpers of the tests of deployment folders in Azure ML's layout (tests/azureml/<name>/:
deployment.yml, endpoint.yml, code/, data/): their model/ is made in the test (a small
scikit-learn classifier, as an MLflow model or pickled), never committed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
FEATURES = ["age", "sex", "chol", "thalach"]


def training_frame() -> tuple[pd.DataFrame, pd.Series]:
    import numpy as np

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"age": rng.integers(29, 78, 200), "sex": rng.integers(0, 2, 200),
                      "chol": rng.integers(126, 401, 200), "thalach": rng.integers(90, 201, 200)})
    y = ((X["age"] > 50) & (X["thalach"] < 150)).astype("int64")
    return X, y


def fitted():  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    X, y = training_frame()
    return LogisticRegression(max_iter=1000).fit(X, y)


def save_mlflow(path: Path, model=None) -> Path:  # type: ignore[no-untyped-def]
    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    model = model if model is not None else fitted()
    signature = ModelSignature(Schema([ColSpec("long", name) for name in FEATURES]),
                               Schema([ColSpec("long")]))
    mlflow.sklearn.save_model(model, str(path), signature=signature)
    return path


def save_pickle(path: Path) -> Path:
    import joblib

    path.mkdir(parents=True, exist_ok=True)
    joblib.dump(fitted(), path / "model.pkl")
    return path


def expected(data: Path) -> dict[str, list[int]]:
    model = fitted()
    return {p.name: [int(v) for v in model.predict(pd.read_csv(p))]
            for p in sorted(data.glob("*.csv"))}
