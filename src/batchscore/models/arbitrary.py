"""The arbitrary-style pair (Ghiasi et al.): a style vector from any painting, applied to frames.

``arbitrary_predict.onnx`` maps a 256x256 painting to a 100-number style vector; compute it
once per job (``compute_style_vector``) and hand the vector to workers.
``arbitrary_transform.onnx`` ships with a fixed 1x384x384x3 input; its graph is convolutional,
so ``resolution_free`` rewrites the input, output and Reshape shapes to run at any size and
batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from PIL import Image, ImageOps, UnidentifiedImageError

from batchscore.errors import InputError, MediaError, UsageError
from batchscore.models.assets import builtin_model_path
from batchscore.models.base import StyleModel
from batchscore.models.runtime import RuntimeOptions, create_session

__all__ = [
    "STYLE_IMAGE_SIZE",
    "STYLE_VECTOR_SIZE",
    "ArbitraryStyleModel",
    "compute_style_vector",
    "predict_style_vector",
    "resolution_free",
]

STYLE_IMAGE_SIZE = 256  # the predictor's fixed input
STYLE_VECTOR_SIZE = 100


def resolution_free(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the transformer whose image input/output are N x H x W x 3.

    The instance-norm statistics are reshaped to constant ``[1, C, 1, 1]`` shapes; those
    become ``[-1, C, 1, 1]`` so that batches work too. Nothing else depends on the size.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    images = [graph.input[0], graph.output[0]]
    for value in images:
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4 or dims[3].dim_value != 3:
            raise UsageError(f"{value.name!r} is not an N,H,W,3 image tensor")
        for axis, name in enumerate(("N", "H", "W")):
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = name
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers:
            continue
        init = initializers[node.input[1]]
        shape = numpy_helper.to_array(init).copy()
        if shape.ndim == 1 and len(shape) == 4 and shape[0] == 1:
            shape[0] = -1
            init.CopyFrom(numpy_helper.from_array(shape, init.name))
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


@functools.cache
def _transform_graph() -> bytes:
    original = onnx.load(str(builtin_model_path("arbitrary_transform")))
    return resolution_free(original).SerializeToString()


def _load_picture(image: str | Path | np.ndarray | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        picture = image
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise UsageError(
                f"a style image array must be H,W,3 uint8, got {image.shape} {image.dtype}"
            )
        picture = Image.fromarray(image)
    else:
        path = Path(image)
        if not path.is_file():
            raise InputError(f"style image {path} does not exist")
        try:
            with Image.open(path) as opened:
                picture = ImageOps.exif_transpose(opened)
                picture.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise MediaError(f"style image {path} is not a readable picture: {exc}") from None
    if picture.mode in ("RGBA", "LA", "P", "PA"):
        picture = picture.convert("RGBA")
        white = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(white, picture)
    return picture.convert("RGB")


def compute_style_vector(
    image: str | Path | np.ndarray | Image.Image, runtime: RuntimeOptions | None = None
) -> np.ndarray:
    """The 100-number style vector of a painting (centre square, resized to 256x256)."""
    session = create_session(builtin_model_path("arbitrary_predict"), runtime or RuntimeOptions())
    return predict_style_vector(session, image)


def predict_style_vector(
    session: Any, image: str | Path | np.ndarray | Image.Image
) -> np.ndarray:
    """``compute_style_vector`` with a session of ``arbitrary_predict.onnx`` made once by the
    caller (the quality report embeds many frames)."""
    picture = _load_picture(image)
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    square = picture.crop((left, top, left + side, top + side))
    square = square.resize((STYLE_IMAGE_SIZE, STYLE_IMAGE_SIZE), Image.Resampling.LANCZOS)
    x = (np.asarray(square, dtype=np.float32) / 255.0)[None]
    vector = session.run(None, {session.get_inputs()[0].name: x})[0]
    return vector.reshape(STYLE_VECTOR_SIZE).astype(np.float32)


class ArbitraryStyleModel(StyleModel):
    """Applies a style vector (from ``compute_style_vector``) at any resolution.

    Input NHWC float 0..1, output 0..1 (sigmoid); sizes are padded to a multiple of 4.
    """

    def __init__(
        self,
        style_vector: np.ndarray | Sequence[float],
        *,
        max_size: int | None = 512,
        batch_size: int = 4,
        strength: float = 1.0,
        runtime: RuntimeOptions | None = None,
    ) -> None:
        super().__init__(
            max_size=max_size, batch_size=batch_size, strength=strength, runtime=runtime
        )
        vector = np.asarray(style_vector, dtype=np.float32).reshape(-1)
        if vector.size != STYLE_VECTOR_SIZE or not np.isfinite(vector).all():
            raise UsageError(
                f"a style vector has {STYLE_VECTOR_SIZE} finite numbers, got {vector.size}"
            )
        self.style_vector = vector

    @classmethod
    def from_image(
        cls, image: str | Path | np.ndarray | Image.Image, **kwargs: Any
    ) -> ArbitraryStyleModel:
        """The model for one painting (computes its style vector once)."""
        vector = compute_style_vector(image, kwargs.get("runtime"))
        return cls(vector, **kwargs)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        session = self._session("arbitrary_transform", _transform_graph)
        image_input, vector_input = (i.name for i in session.get_inputs())
        vector = self.style_vector.reshape(1, 1, 1, STYLE_VECTOR_SIZE)
        return session.run(None, {image_input: batch, vector_input: vector})[0]

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "arbitrary",
            "style_vector": [float(v) for v in self.style_vector],
            **self._common_spec(),
        }
