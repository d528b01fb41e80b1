"""Helpers of the tabular tests: generated sensor data, scikit-learn models on it, a real MLflow
registry under tmp, and a model whose predict returns a DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["GROUPS", "Registry", "TwoColumns", "expected", "fit", "sensor_frame"]

GROUPS = [(1, 1), (1, 4), (2, 1)]  # (Device, Sensor) pairs in the data


def sensor_frame(rows: int = 60, groups: list[tuple[int, int]] = GROUPS) -> pd.DataFrame:
    """Rows of (TS, Device, Sensor, Value, Temp), the groups interleaved as a stream is."""
    i = np.arange(rows)
    device = np.array([groups[k % len(groups)][0] for k in i])
    sensor = np.array([groups[k % len(groups)][1] for k in i])
    return pd.DataFrame({
        "TS": [f"2018-08-28 23:{k // 60:02d}:{k % 60:02d}" for k in i],
        "Device": device,
        "Sensor": sensor,
        "Value": np.round(10 + 0.5 * i + sensor, 2),
        "Temp": np.round(20 + (i % 5) * 0.25, 2),
    })


def fit(frame: pd.DataFrame, factor: float = 1.0) -> Pipeline:
    """A scaler + linear model predicting ``factor * (2 Value + Temp)`` exactly."""
    X = frame[["Value", "Temp"]]
    return make_pipeline(StandardScaler(), LinearRegression()).fit(
        X, factor * (2 * X["Value"] + X["Temp"]))


def expected(frame: pd.DataFrame, factor: float = 1.0) -> np.ndarray:
    return factor * (2 * frame["Value"].astype(float) + frame["Temp"].astype(float))


class Registry:
    """A real MLflow registry (SQLite) with artifacts under tmp."""

    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = (root / "artifacts").as_uri()
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self._experiment: str | None = None

    def register(self, name: str, model: Pipeline, frame: pd.DataFrame,
                 alias: str | None = "production") -> int:
        import mlflow
        from mlflow.models import infer_signature
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        with _use_tracking_uri(self.uri):
            return self._register(mlflow, infer_signature, name, model, frame, alias)

    def _register(self, mlflow: Any, infer_signature: Any, name: str, model: Pipeline,
                  frame: pd.DataFrame, alias: str | None) -> int:
        if self._experiment is None:
            self._experiment = self.client.create_experiment("tabular-tests",
                                                             artifact_location=self.artifacts)
        X = frame[["Value", "Temp"]]
        # MLflow 3 names the logged model name=; 2.x (the older stack's lane) artifact_path=
        where = {"artifact_path" if mlflow.__version__.startswith("2.") else "name": "model"}
        with mlflow.start_run(experiment_id=self._experiment):
            info = mlflow.sklearn.log_model(
                model, signature=infer_signature(X, model.predict(X)), **where)
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(name, info.model_uri, run_id=info.run_id)
        if alias is not None:
            self.client.set_registered_model_alias(name, alias, version.version)
        return int(version.version)


class TwoColumns:
    """A model whose predict returns a DataFrame (one of its columns named like a key)."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"low": frame["Value"] < 20, "Device": 0})
