"""Fixtures of the tabular tests: sensor data, model folders, an MLflow registry under tmp."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import joblib
import pandas as pd
import pytest
from tabular_helpers import GROUPS, Registry, fit, sensor_frame


@pytest.fixture(autouse=True)
def _no_ambient_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def data() -> pd.DataFrame:
    return sensor_frame()


@pytest.fixture
def model_dir(tmp_path: Path, data: pd.DataFrame) -> Path:
    """A folder holding model.joblib (a Pipeline fitted on a DataFrame: it knows its features)."""
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(fit(data), folder / "model.joblib")
    return folder


@pytest.fixture
def hive_models(tmp_path: Path, data: pd.DataFrame) -> Callable[..., Path]:
    """One model per (Device, Sensor) in <folder>/Device=d/Sensor=s/model.joblib; the model
    of group (d, s) predicts (10 d + s) * (2 Value + Temp)."""

    def make(groups: list[tuple[int, int]] = GROUPS) -> Path:
        root = tmp_path / "models"
        for d, s in groups:
            folder = root / f"Device={d}" / f"Sensor={s}"
            folder.mkdir(parents=True)
            joblib.dump(fit(data, 10 * d + s), folder / "model.joblib")
        return root

    return make


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Per test module (logging a model takes seconds): sensor-D-S models for each group
    predicting (10 D + S) * (2 Value + Temp), at alias production, and one model "single"."""
    reg = Registry(tmp_path_factory.mktemp("registry"))
    frame = sensor_frame()
    for d, s in GROUPS[:2]:  # (2, 1) has no registered model
        reg.register(f"sensor-{d}-{s}", fit(frame, 10 * d + s), frame)
    reg.register("single", fit(frame, 3.0), frame, alias=None)
    reg.register("single", fit(frame, 5.0), frame)  # version 2 holds production
    yield reg
