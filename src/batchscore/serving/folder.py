"""Serving an MLflow model folder without a registry: a downloaded version, a container's
``/srv/model``. The folder may hold ``batchscore-model.json`` (``{"name", "version"}``, written
by ``batchscore model dockerfile``) so that ``/version`` answers as the registry would."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError, UsageError
from .app import ServedModel, output_type
from .predict import served_predict

__all__ = ["SIDECAR", "load_model_folder"]

SIDECAR = "batchscore-model.json"


def load_model_folder(path: str | Path, *, name: str | None = None,
                      version: str | None = None) -> ServedModel:
    """The MLflow model in folder ``path`` (it holds an ``MLmodel`` file), through pyfunc."""
    import mlflow.pyfunc

    root = Path(path).expanduser().resolve()
    if not (root / "MLmodel").is_file():
        raise InputError(f"model folder {root} is not an MLflow model: it has no MLmodel file")
    meta: dict[str, object] = {}
    if (root / SIDECAR).is_file():
        try:
            meta = json.loads((root / SIDECAR).read_text())
        except ValueError as exc:
            raise InputError(f"{root / SIDECAR} is not valid JSON: {exc}") from None
    try:
        model = mlflow.pyfunc.load_model(str(root))
    except Exception as exc:
        raise InputError(f"model folder {root} cannot be loaded: {type(exc).__name__}: "
                         f"{exc}") from None
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise UsageError(f"model folder {root} has no input signature with column names; "
                         "log the model with a signature to serve it")
    sig = [(spec.name, spec.type.name) for spec in schema.inputs]
    return ServedModel(name or str(meta.get("name") or root.name),
                       version or str(meta.get("version", "0")), sig,
                       served_predict(model, sig), output_type(model))
