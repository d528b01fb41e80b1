"""The generic adapter: layouts, value ranges, channel order, fixed sizes, and model cards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from batchscore.errors import InputError, UsageError
from batchscore.models import ModelCard, OnnxImageModel, load_model_card


@pytest.mark.parametrize(
    ("name", "layout", "value_range"), [("nchw_1", "NCHW", 1), ("nhwc_255", "NHWC", 255)]
)
def test_layouts_and_ranges(onnx_models, frames, name: str, layout: str, value_range: int) -> None:
    card = ModelCard(str(onnx_models[name]), layout=layout, value_range=value_range)
    out = OnnxImageModel(card, max_size=None).stylize(frames)
    assert np.abs(out.astype(int) - (255 - frames.astype(int))).max() <= 1


def test_bgr_and_resizing(onnx_models, frames) -> None:
    card = ModelCard(str(onnx_models["nchw_1"]), channels="BGR", pad_multiple=8)
    out = OnnxImageModel(card, max_size=None).stylize(frames)
    assert np.abs(out.astype(int) - (255 - frames.astype(int))).max() <= 1
    small = OnnxImageModel(card, max_size=32, batch_size=2).stylize(frames)
    assert small.shape == frames.shape


def test_a_fixed_size_network_runs_at_its_size(onnx_models, frames) -> None:
    model = OnnxImageModel(ModelCard(str(onnx_models["fixed"])), max_size=512)
    assert model._run_size(97, 61) == (48, 32)
    assert model.stylize(frames).shape == frames.shape


def test_cards_from_json_and_yaml(onnx_models, tmp_path: Path) -> None:
    model_file = onnx_models["nhwc_255"]
    (tmp_path / "m.onnx").write_bytes(model_file.read_bytes())
    (tmp_path / "card.json").write_text(json.dumps({"path": "m.onnx", "layout": "NHWC",
                                                    "value_range": 255}))  # fmt: skip
    (tmp_path / "card.yaml").write_text("path: m.onnx\nlayout: NHWC\nvalue_range: 255\n")
    expected = ModelCard(str(tmp_path / "m.onnx"), layout="NHWC", value_range=255)
    assert load_model_card(tmp_path / "card.json") == expected
    assert load_model_card(tmp_path / "card.yaml") == expected
    assert ModelCard.from_dict(expected.to_dict()) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("layout: NCHW\n", "needs a 'path'"),
        ("path: m.onnx\nsize: 3\n", "unknown keys ['size']"),
        ("path: m.onnx\nlayout: CHW\n", "layout must be NCHW or NHWC, got 'CHW'"),
        ("path: m.onnx\nvalue_range: 100\n", "value_range must be 1 or 255, got 100"),
        ("- a list\n", "must hold a mapping, got list"),
        ("path: [unclosed\n", "is not valid JSON/YAML"),
    ],
)
def test_bad_cards(tmp_path: Path, text: str, message: str) -> None:
    card = tmp_path / "card.yaml"
    card.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_model_card(card)
    assert message in str(caught.value)


def test_bad_models(onnx_models, tmp_path: Path, frames) -> None:
    with pytest.raises(InputError, match=r"card\.yaml does not exist"):
        load_model_card(tmp_path / "card.yaml")
    with pytest.raises(InputError, match=r"nothing\.onnx does not exist"):
        OnnxImageModel(ModelCard(str(tmp_path / "nothing.onnx")))
    with pytest.raises(UsageError, match="has no input 'image'"):
        OnnxImageModel(ModelCard(str(onnx_models["nchw_1"]), input_name="image"))
    nhwc_as_nchw = ModelCard(str(onnx_models["nhwc_255"]), layout="NCHW")
    with pytest.raises(UsageError, match="not a NCHW image with 3 channels"):
        OnnxImageModel(nhwc_as_nchw)
