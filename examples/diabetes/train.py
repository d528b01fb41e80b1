"""Training: a Ridge regression on the 10 features."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.linear_model import Ridge


def train(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Ridge:
    model = Ridge(alpha=float(params["train"]["alpha"]), random_state=params["data"]["seed"])
    return model.fit(features, target)
