"""Evaluation: the metrics of a model on held-out data (rmse decides promotion)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score


def evaluate(model: Any, features: pd.DataFrame, target: pd.Series) -> dict[str, float]:
    predicted = np.asarray(model.predict(features), dtype=float).ravel()
    return {
        "rmse": float(np.sqrt(np.mean((predicted - target.to_numpy()) ** 2))),
        "mae": float(mean_absolute_error(target, predicted)),
        "r2": float(r2_score(target, predicted)),
    }
