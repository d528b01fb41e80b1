"""Model fixtures: small frames and tiny hand-built ONNX networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    """Three 61x97 RGB frames (odd sizes on purpose) with structure a style network can see."""
    y, x = np.mgrid[0:61, 0:97]
    out = np.empty((3, 61, 97, 3), np.uint8)
    for i in range(3):
        out[i, ..., 0] = (x * 2 + 20 * i) % 256
        out[i, ..., 1] = (y * 4) % 256
        out[i, ..., 2] = ((x // 8 + y // 8) % 2) * 200
    return out


def invert_model(path: Path, *, layout: str, scale: float, fixed: tuple[int, int] | None = None):
    """Write an ONNX network computing ``scale - x`` on an image tensor of ``layout``."""
    h, w = fixed if fixed else ("H", "W")
    shape = ["N", 3, h, w] if layout == "NCHW" else ["N", h, w, 3]
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("result", TensorProto.FLOAT, shape)
    top = helper.make_tensor("top", TensorProto.FLOAT, [], [scale])
    node = helper.make_node("Sub", ["top", "pixels"], ["result"])
    graph = helper.make_graph([node], "invert", [x], [y], initializer=[top])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {
        "nchw_1": invert_model(folder / "nchw_1.onnx", layout="NCHW", scale=1.0),
        "nhwc_255": invert_model(folder / "nhwc_255.onnx", layout="NHWC", scale=255.0),
        "fixed": invert_model(folder / "fixed.onnx", layout="NCHW", scale=1.0, fixed=(32, 48)),
    }
