"""Any user ONNX image-to-image network, described by a small model card.

A card says where the ONNX file is and how the network wants its pixels::

    {"path": "sketch.onnx", "layout": "NHWC", "value_range": 255}

``layout`` is NCHW (default) or NHWC; ``value_range`` is 1 (floats 0..1, default) or 255
(floats 0..255), for the output too unless ``output_range`` says otherwise; ``channels`` is
RGB (default) or BGR. A network with a fixed height and width runs at exactly that size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from batchscore.errors import BatchscoreError, InputError, UsageError
from batchscore.models.base import StyleModel
from batchscore.models.runtime import RuntimeOptions

__all__ = ["ModelCard", "OnnxImageModel", "load_model_card"]

Layout = Literal["NCHW", "NHWC"]


@dataclass(frozen=True)
class ModelCard:
    """How to feed an image-to-image ONNX network (see the module docstring)."""

    path: str
    layout: Layout = "NCHW"
    value_range: float = 1.0
    output_range: float | None = None
    channels: Literal["RGB", "BGR"] = "RGB"
    input_name: str | None = None
    output_name: str | None = None
    pad_multiple: int = 1

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise UsageError(f"model card layout must be NCHW or NHWC, got {self.layout!r}")
        for name in ("value_range", "output_range"):
            value = getattr(self, name)
            if value is not None and value not in (1, 255):
                raise UsageError(f"model card {name} must be 1 or 255, got {value!r}")
        if self.channels not in ("RGB", "BGR"):
            raise UsageError(f"model card channels must be RGB or BGR, got {self.channels!r}")
        if not isinstance(self.pad_multiple, int) or self.pad_multiple < 1:
            raise UsageError(
                f"model card pad_multiple must be a positive integer, got {self.pad_multiple!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> ModelCard:
        """A card from plain data; a relative ``path`` is taken relative to ``base``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"model card has unknown keys {unknown}; known keys are {sorted(known)}"
            )
        if "path" not in data:
            raise UsageError("model card needs a 'path' to the ONNX file")
        path = Path(str(data["path"]))
        if base is not None and not path.is_absolute():
            path = base / path
        return cls(**{**data, "path": str(path)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_model_card(path: str | Path) -> ModelCard:
    """Read a model card from a JSON or YAML file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model card {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"model card {path} is not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"model card {path} must hold a mapping, got {type(data).__name__}")
    return ModelCard.from_dict(data, base=path.parent)


class OnnxImageModel(StyleModel):
    """Runs a user network described by a ModelCard behind the StyleModel interface."""

    def __init__(
        self,
        card: ModelCard,
        *,
        max_size: int | None = 512,
        batch_size: int = 4,
        strength: float = 1.0,
        runtime: RuntimeOptions | None = None,
    ) -> None:
        super().__init__(
            max_size=max_size, batch_size=batch_size, strength=strength, runtime=runtime
        )
        if not Path(card.path).is_file():
            raise InputError(f"ONNX model {card.path} does not exist")
        self.card = card
        self.pad_multiple = card.pad_multiple  # type: ignore[misc]
        try:
            session = self._session("model", card.path)
        except BatchscoreError:
            raise
        except Exception as exc:  # onnxruntime's errors on a file that is not a usable model
            raise InputError(f"ONNX model {card.path} cannot be loaded: "
                             f"{type(exc).__name__}: {exc}") from None
        inputs = {i.name: i for i in session.get_inputs()}
        self._input = card.input_name or next(iter(inputs))
        if self._input not in inputs:
            raise UsageError(
                f"ONNX model {card.path} has no input {self._input!r}; it has {sorted(inputs)}"
            )
        shape = inputs[self._input].shape
        channel_axis = 1 if card.layout == "NCHW" else 3
        other_axis = 3 if card.layout == "NCHW" else 1
        channels = shape[channel_axis] if len(shape) == 4 else None
        other = shape[other_axis] if len(shape) == 4 else None
        if channels != 3 and (isinstance(channels, int) or other == 3 or len(shape) != 4):
            raise UsageError(
                f"ONNX model {card.path} input {self._input!r} has shape {shape}, "
                f"which is not a {card.layout} image with 3 channels"
            )
        hw = shape[2:4] if card.layout == "NCHW" else shape[1:3]
        self._fixed = tuple(hw) if all(isinstance(d, int) and d > 0 for d in hw) else None
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def _run_size(self, width: int, height: int) -> tuple[int, int]:
        if self._fixed is not None:
            fixed_h, fixed_w = self._fixed
            return int(fixed_w), int(fixed_h)
        return super()._run_size(width, height)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._fixed_batch is not None and len(batch) != self._fixed_batch:
            parts = [self._run(batch[i : i + 1]) for i in range(len(batch))]
            return np.concatenate(parts)
        session = self._session("model", self.card.path)
        x = batch[..., ::-1] if self.card.channels == "BGR" else batch
        x = x * np.float32(self.card.value_range)
        if self.card.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x, dtype=np.float32)
        outputs = [self.card.output_name] if self.card.output_name else None
        y = np.asarray(session.run(outputs, {self._input: x})[0], dtype=np.float32)
        if self.card.layout == "NCHW":
            y = y.transpose(0, 2, 3, 1)
        if y.shape[:3] != batch.shape[:3] or y.shape[3] != 3:
            raise UsageError(
                f"ONNX model {self.card.path} returned shape {y.shape} for a batch of "
                f"{batch.shape} ({self.card.layout}); an image-to-image model keeps the size"
            )
        y = y / np.float32(self.card.output_range or self.card.value_range)
        return y[..., ::-1] if self.card.channels == "BGR" else y

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "onnx", "card": self.card.to_dict(), **self._common_spec()}
