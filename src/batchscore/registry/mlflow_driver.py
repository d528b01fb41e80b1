"""The scoring script of an MLflow model deployed without one (Azure's "no-code" deployment).

Each file of a mini-batch (CSV or Parquet) is read into a DataFrame, its columns typed as the
model's signature declares (a value that does not parse fails the file, naming it), and passed
whole to the model's ``pyfunc`` ``predict``. One line per input row is returned,
``row,prediction,file`` (the row's number in its file from 0, the prediction, the file's
name), written as CSV without a header, so that
``pd.read_csv(path, names=["row", "prediction", "file"])`` reads the output back. A model with
several outputs (a DataFrame of several columns, a dict of arrays, a 2-D array) gives each
row's outputs as one JSON value in the prediction field: ``{"a": 1, "b": 0.5}`` or
``[0.1, 0.9]``.

The job ships this file as its scoring script; it imports nothing of batchscore.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

model: Any = None
_TYPES = {"integer": "int32", "long": "int64", "float": "float32", "double": "float64",
          "boolean": "bool", "string": "object"}


def init() -> None:
    global model
    import mlflow.pyfunc

    root = Path(os.environ["AZUREML_MODEL_DIR"])
    found = [p for p in sorted(root.iterdir()) if (p / "MLmodel").is_file()]
    if not found:
        raise RuntimeError(f"no MLflow model (a folder with an MLmodel file) in {root}")
    model = mlflow.pyfunc.load_model(str(found[0].resolve()))  # a link: its target


def _read(path: str) -> pd.DataFrame:
    ext = Path(path).suffix.lower().lstrip(".")
    if ext == "csv":
        return pd.read_csv(path)
    if ext == "parquet":
        return pd.read_parquet(path)
    raise ValueError(f"Error processing input file: {path!r}. File type {ext!r} is not "
                     "supported (an MLflow deployment without a scoring script reads .csv "
                     "and .parquet files)")


def _enforce(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Cast the columns the signature declares to its types (as Azure does when it reads)."""
    schema = model.metadata.get_input_schema() if model is not None else None
    if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
        return frame
    frame = frame.copy()
    for spec in schema.inputs:
        name = spec.name
        target = _TYPES.get(getattr(spec.type, "name", ""))
        if name not in frame.columns or target in (None, "bool", "object"):
            continue
        try:
            frame[name] = frame[name].astype(target)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"Error processing input file: {path!r}. Column {name!r} "
                             f"must be {spec.type.name}: {exc}") from None
    return frame


def _value(item: Any) -> Any:
    if isinstance(item, np.generic):
        return item.item()
    if isinstance(item, np.ndarray):
        return [_value(v) for v in item.tolist()]
    if isinstance(item, dict):
        return {str(k): _value(v) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [_value(v) for v in item]
    return item


def _rows(pred: Any, n: int) -> list[Any]:
    """One prediction per input row; several outputs as one JSON value per row."""
    if isinstance(pred, pd.DataFrame):
        if pred.shape[1] == 1:
            return [_value(v) for v in pred.iloc[:, 0].tolist()]
        return [json.dumps(_value(r)) for r in pred.to_dict(orient="records")]
    if isinstance(pred, pd.Series):
        return [_value(v) for v in pred.tolist()]
    if isinstance(pred, dict):
        columns = {str(k): np.asarray(v) for k, v in pred.items()}
        return [json.dumps({k: _value(v[i]) for k, v in columns.items()}) for i in range(n)]
    array = np.asarray(pred)
    if array.ndim == 1:
        return [_value(v) for v in array]
    if array.ndim == 2 and array.shape[1] == 1:
        return [_value(v) for v in array[:, 0]]
    return [json.dumps(_value(r)) for r in array]


def run(mini_batch: list[str]) -> list[str]:
    lines: list[str] = []
    for path in mini_batch:
        frame = _enforce(_read(path), path)
        predictions = _rows(model.predict(frame), len(frame))
        if len(predictions) != len(frame):
            raise ValueError(f"the model returned {len(predictions)} predictions for the "
                             f"{len(frame)} rows of {path!r}")
        name = os.path.basename(path)
        for row, prediction in enumerate(predictions):
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow([row, prediction, name])
            lines.append(buffer.getvalue())
    return lines
