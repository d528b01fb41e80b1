"""Batch scoring script (init/run contract): scores tabular mini-batches with the model in
``$AZUREML_MODEL_DIR`` (an MLflow model folder, such as a downloaded registry version)."""

from __future__ import annotations

import os

import pandas as pd

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
model = None


def init() -> None:
    global model
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(os.environ["AZUREML_MODEL_DIR"])


def run(mini_batch: pd.DataFrame) -> pd.DataFrame:
    out = mini_batch.copy()
    out["prediction"] = model.predict(mini_batch[FEATURES].astype("float64"))
    return out
