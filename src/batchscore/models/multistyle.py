"""The 26-style conditional-instance-norm network (Dumoulin et al.): one style or a blend."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from batchscore.errors import UsageError
from batchscore.models.assets import builtin_model_path
from batchscore.models.base import StyleModel
from batchscore.models.runtime import RuntimeOptions

__all__ = ["NUM_STYLES", "MultiStyleModel", "StyleWeights", "parse_style_weights"]

NUM_STYLES = 26

StyleWeights = int | str | Mapping[int, float] | Sequence[float]

_SPEC_HELP = 'use an index such as "7" or weighted indices such as "3:0.5,12:0.5"'


def parse_style_weights(spec: StyleWeights) -> np.ndarray:
    """Turn a style choice into 26 non-negative weights that sum to 1.

    Accepts an index (``7``), a string (``"7"``, ``"3:0.5,12:0.5"``; a missing weight is 1),
    a mapping ``{index: weight}``, or a sequence of 26 weights.
    """
    if isinstance(spec, bool):
        raise UsageError(f"style must be an index or weights, got {spec!r}")
    if isinstance(spec, int | np.integer):
        pairs = [(int(spec), 1.0)]
    elif isinstance(spec, str):
        pairs = _parse_string(spec)
    elif isinstance(spec, Mapping):
        pairs = [(_index(i, spec), _weight(w, spec)) for i, w in spec.items()]
    else:
        values = list(spec)
        if len(values) != NUM_STYLES:
            raise UsageError(f"a weight list needs {NUM_STYLES} values, got {len(values)}")
        pairs = [(i, _weight(w, spec)) for i, w in enumerate(values)]
    weights = np.zeros(NUM_STYLES, dtype=np.float32)
    for index, weight in pairs:
        if not 0 <= index < NUM_STYLES:
            raise UsageError(f"style index must be 0 to {NUM_STYLES - 1}, got {index} in {spec!r}")
        if weights[index] and isinstance(spec, str):
            raise UsageError(f"style index {index} appears twice in {spec!r}")
        weights[index] += weight
    if weights.sum() <= 0:
        raise UsageError(f"style weights must not all be zero, got {spec!r}")
    return weights / weights.sum()


def _parse_string(spec: str) -> list[tuple[int, float]]:
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in parts):
        raise UsageError(f"style {spec!r} has an empty entry; {_SPEC_HELP}")
    pairs = []
    for part in parts:
        index, colon, weight = part.partition(":")
        if colon and not weight.strip():
            raise UsageError(f"style entry {part!r} has no weight after ':'; {_SPEC_HELP}")
        pairs.append((_index(index, spec), _weight(weight, spec) if colon else 1.0))
    return pairs


def _index(value: object, spec: object) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise UsageError(
            f"style index {value!r} in {spec!r} is not an integer; {_SPEC_HELP}"
        ) from None


def _weight(value: object, spec: object) -> float:
    try:
        weight = float(str(value).strip())
    except ValueError:
        raise UsageError(f"style weight {value!r} in {spec!r} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise UsageError(
            f"style weights must be finite and non-negative, got {value!r} in {spec!r}"
        )
    return weight


@functools.cache
def _batched_graph() -> bytes:
    """multistyle26.onnx with a free batch dimension (the graph is batch-agnostic otherwise)."""
    model = onnx.load(str(builtin_model_path("multistyle26")))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_value")
    dim.dim_param = "N"
    return model.SerializeToString()


class MultiStyleModel(StyleModel):
    """The built-in 26 styles: ``style`` picks one (``7``) or blends several (``"3:0.5,12:0.5"``).

    Input NCHW float 0..1, output 0..1 (sigmoid); sizes are padded to a multiple of 4.
    """

    def __init__(
        self,
        style: StyleWeights = 0,
        *,
        max_size: int | None = 512,
        batch_size: int = 4,
        strength: float = 1.0,
        runtime: RuntimeOptions | None = None,
    ) -> None:
        super().__init__(
            max_size=max_size, batch_size=batch_size, strength=strength, runtime=runtime
        )
        self.weights = parse_style_weights(style)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        session = self._session("multistyle26", _batched_graph)
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        out = session.run(None, {"image": x, "style_weights": self.weights})[0]
        return out.transpose(0, 2, 3, 1)

    def to_spec(self) -> dict[str, Any]:
        style = {str(i): float(w) for i, w in enumerate(self.weights) if w > 0}
        return {"kind": "multistyle", "style": style, **self._common_spec()}
