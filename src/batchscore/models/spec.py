"""Models as plain data: a job stores a spec once, and each worker builds its model from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchscore.errors import UsageError
from batchscore.models.arbitrary import ArbitraryStyleModel
from batchscore.models.base import StyleModel
from batchscore.models.multistyle import MultiStyleModel
from batchscore.models.onnx_image import ModelCard, OnnxImageModel
from batchscore.models.runtime import RuntimeOptions

__all__ = ["model_from_spec"]

_COMMON = ("max_size", "batch_size", "strength")


def model_from_spec(spec: Mapping[str, Any]) -> StyleModel:
    """Build the model that ``StyleModel.to_spec()`` described.

    ``{"kind": "multistyle", "style": "3:0.5,12:0.5"}``,
    ``{"kind": "arbitrary", "style_vector": [...100 numbers]}`` or
    ``{"kind": "onnx", "card": {...}}``, each with optional ``max_size``, ``batch_size``,
    ``strength``, ``device`` and ``threads``.
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    options: dict[str, Any] = {key: spec.pop(key) for key in _COMMON if key in spec}
    runtime = RuntimeOptions(device=spec.pop("device", "cpu"), threads=spec.pop("threads", None))
    if kind == "multistyle":
        style = spec.pop("style", 0)
        if isinstance(style, Mapping):
            style = {int(k): float(v) for k, v in style.items()}
        model: StyleModel = MultiStyleModel(style, runtime=runtime, **options)
    elif kind == "arbitrary":
        if "style_vector" not in spec:
            raise UsageError("an arbitrary-style spec needs a 'style_vector'")
        model = ArbitraryStyleModel(spec.pop("style_vector"), runtime=runtime, **options)
    elif kind == "onnx":
        if not isinstance(spec.get("card"), Mapping):
            raise UsageError("an onnx spec needs a 'card' mapping")
        card = ModelCard.from_dict(dict(spec.pop("card")))
        model = OnnxImageModel(card, runtime=runtime, **options)
    else:
        raise UsageError(f"model spec kind must be multistyle, arbitrary or onnx, got {kind!r}")
    if spec:
        raise UsageError(f"model spec for {kind} has unknown keys {sorted(spec)}")
    return model
