"""The arbitrary-style pair: the resolution-free rewrite, style vectors, and bad pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from batchscore.errors import InputError, MediaError, UsageError
from batchscore.models import (
    ArbitraryStyleModel,
    RuntimeOptions,
    builtin_model_path,
    compute_style_vector,
    resolution_free,
)
from batchscore.models.runtime import create_session


@pytest.fixture(scope="module")
def painting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    y, x = np.mgrid[0:300, 0:400]
    picture = np.stack([(x * 7) % 256, (y * 3) % 256, ((x + y) // 20 % 2) * 255], -1)
    path = tmp_path_factory.mktemp("style") / "painting.png"
    Image.fromarray(picture.astype(np.uint8)).save(path)
    return path


def test_rewritten_transformer_matches_the_original_at_384(painting: Path) -> None:
    original = onnx.load(str(builtin_model_path("arbitrary_transform")))
    rewritten = resolution_free(original)
    dims = [d.dim_param or d.dim_value for d in rewritten.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "H", "W", 3]
    runtime = RuntimeOptions(threads=1)
    before = create_session(original.SerializeToString(), runtime)
    after = create_session(rewritten.SerializeToString(), runtime)
    image = np.random.default_rng(0).random((1, 384, 384, 3), dtype=np.float32)
    vector = compute_style_vector(painting).reshape(1, 1, 1, 100)
    names = [i.name for i in before.get_inputs()]
    feed = {names[0]: image, names[1]: vector}
    expected, got = before.run(None, feed)[0], after.run(None, feed)[0]
    assert np.allclose(got, expected, rtol=0, atol=1e-6)


def test_rewritten_transformer_runs_at_other_sizes_and_batches() -> None:
    rewritten = resolution_free(onnx.load(str(builtin_model_path("arbitrary_transform"))))
    session = create_session(rewritten.SerializeToString(), RuntimeOptions())
    names = [i.name for i in session.get_inputs()]
    batch = np.random.default_rng(1).random((2, 40, 64, 3), dtype=np.float32)
    vector = np.zeros((1, 1, 1, 100), np.float32)
    out = session.run(None, {names[0]: batch, names[1]: vector})[0]
    single = session.run(None, {names[0]: batch[1:], names[1]: vector})[0]
    assert out.shape == (2, 40, 64, 3)
    assert np.allclose(out[1:], single, atol=1e-6)


def test_style_vector_is_computed_once_and_is_plain_data(painting: Path, frames) -> None:
    vector = compute_style_vector(painting)
    assert vector.shape == (100,) and vector.dtype == np.float32
    assert np.array_equal(vector, compute_style_vector(Image.open(painting)))
    model = ArbitraryStyleModel(vector.tolist(), max_size=48)
    out = model.stylize(frames)
    assert out.shape == frames.shape and np.abs(out.astype(int) - frames).mean() > 10
    same = ArbitraryStyleModel.from_image(painting, max_size=48).stylize(frames)
    assert np.array_equal(out, same)


def test_bad_style_pictures(tmp_path: Path) -> None:
    fake = tmp_path / "style.png"
    fake.write_text("not a picture")
    with pytest.raises(MediaError, match=r"style image .*style\.png is not a readable picture"):
        compute_style_vector(fake)
    with pytest.raises(InputError, match=r"missing\.jpg does not exist"):
        compute_style_vector(tmp_path / "missing.jpg")
    with pytest.raises(UsageError, match="a style image array must be H,W,3 uint8"):
        compute_style_vector(np.zeros((4, 4), np.uint8))
    with pytest.raises(UsageError, match="a style vector has 100 finite numbers, got 3"):
        ArbitraryStyleModel([1.0, 2.0, 3.0])
