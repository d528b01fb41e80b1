"""Score diabetes feature rows with a scikit-learn Ridge model.

An Azure ML batch scoring script, run unchanged by `batchscore job run`: the engine calls
`init()` once per worker process, then `run(mini_batch)` with a pandas DataFrame of CSV rows.
`run` returns a DataFrame with one row per input row: the input's `id` and the `prediction`.
"""

from __future__ import annotations

import os

import joblib
import pandas as pd

model = None


def init() -> None:
    """Load the model once per worker, from the original's layout under AZUREML_MODEL_DIR."""
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))


def run(mini_batch: pd.DataFrame) -> pd.DataFrame:
    if model is None:
        raise RuntimeError("run() called before init(): the model is not loaded")
    features = mini_batch[list(model.feature_names_in_)]  # KeyError names a missing column
    return pd.DataFrame({"id": mini_batch["id"].to_numpy(), "prediction": model.predict(features)})
