"""The example scoring scripts, called the way the engine calls them: init() once, then run().

Each script is imported by path, with `AZUREML_MODEL_DIR` pointing at a model folder in
tmp_path, and scores data made by the example's own generator.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMAGES = EXAMPLES / "image-files"
DIABETES = EXAMPLES / "diabetes-csv"


def load_script(path: Path) -> ModuleType:
    """Import a script by path as a fresh module (scripts keep their model in globals)."""
    name = f"example_{path.parent.name.replace('-', '_')}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would (dataclasses and pickle look it up)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def azureml_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set AZUREML_MODEL_DIR and AZUREML_BI_OUTPUT_PATH to folders in tmp_path."""
    model_dir = tmp_path / "azureml-models"
    output = tmp_path / "output"
    model_dir.mkdir()
    output.mkdir()
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("AZUREML_BI_OUTPUT_PATH", str(output))
    return model_dir


# --- image-files -----------------------------------------------------------------------------


@pytest.fixture
def image_scorer(azureml_env: Path) -> ModuleType:
    shutil.copytree(IMAGES / "model", azureml_env / "model")
    score = load_script(IMAGES / "score.py")
    score.init()
    return score


def test_image_lines_for_known_colours(image_scorer: ModuleType, tmp_path: Path) -> None:
    solid = tmp_path / "solid.png"
    Image.new("RGB", (5, 4), (220, 30, 40)).save(solid)
    mixed = tmp_path / "mixed.png"  # three blue pixels and one white
    pixels = np.array([[[30, 80, 220], [30, 80, 220], [30, 80, 220], [255, 255, 255]]], np.uint8)
    Image.fromarray(pixels).save(mixed)
    grey = tmp_path / "grey.png"
    Image.new("L", (2, 3), 128).save(grey)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (3, 3), (0, 128, 128, 10)).save(rgba)

    assert image_scorer.run([str(solid), str(mixed), str(grey), str(rgba)]) == [
        "solid.png 5 4 220.00 30.00 40.00 red",
        "mixed.png 4 1 86.25 123.75 228.75 blue",
        "grey.png 2 3 128.00 128.00 128.00 gray",
        "rgba.png 3 3 0.00 128.00 128.00 teal",
    ]


def test_image_jpeg_is_scored(image_scorer: ModuleType, tmp_path: Path) -> None:
    jpeg = tmp_path / "yellow.jpg"
    Image.new("RGB", (16, 8), (250, 220, 40)).save(jpeg, quality=95)
    [line] = image_scorer.run([jpeg])
    name, width, height, *means, colour = line.split()
    assert (name, width, height, colour) == ("yellow.jpg", "16", "8", "yellow")
    assert np.allclose([float(m) for m in means], [250, 220, 40], atol=3)


def test_image_lines_for_generated_images(image_scorer: ModuleType, tmp_path: Path) -> None:
    make_data = load_script(IMAGES / "make_data.py")
    paths = make_data.make_images(tmp_path / "data", count=14, seed=7)
    assert [p.name for p in sorted((tmp_path / "data").glob("*.png"))] == [p.name for p in paths]

    lines = image_scorer.run([str(p) for p in paths])

    assert len(lines) == len(paths)
    for path, line in zip(paths, lines, strict=True):
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
        height, width, _ = rgb.shape
        mean_r, mean_g, mean_b = rgb.reshape(-1, 3).mean(axis=0)
        colour = path.stem.split("_")[-1]  # img_NNNN_<background colour>.png
        assert line == (
            f"{path.name} {width} {height} {mean_r:.2f} {mean_g:.2f} {mean_b:.2f} {colour}"
        )


def test_image_bad_files_raise(image_scorer: ModuleType, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (0, 0, 0)).save(good)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    truncated = tmp_path / "truncated.png"
    noisy = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])

    with pytest.raises(ValueError, match=r"^garbage\.png: not a readable image"):
        image_scorer.run([str(good), str(garbage)])
    with pytest.raises(ValueError, match=r"^truncated\.png: not a readable image"):
        image_scorer.run([str(truncated)])
    with pytest.raises(ValueError, match=r"^missing\.png: not a readable image"):
        image_scorer.run([str(tmp_path / "missing.png")])


def test_image_run_before_init_raises(azureml_env: Path) -> None:
    score = load_script(IMAGES / "score.py")
    with pytest.raises(RuntimeError, match="before init"):
        score.run([])


def test_image_generator_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_data = load_script(IMAGES / "make_data.py")
    make_data.main([str(tmp_path / "a"), "--count", "5", "--seed", "3"])
    assert capsys.readouterr().out == f"wrote 5 images to {tmp_path / 'a'}\n"
    make_data.make_images(tmp_path / "b", count=5, seed=3)
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert len(first) == 5
    assert first == second


# --- diabetes-csv ----------------------------------------------------------------------------

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture
def diabetes_scorer(azureml_env: Path) -> ModuleType:
    train = load_script(DIABETES / "train.py")
    assert train.train(azureml_env) == azureml_env / "model" / "model.joblib"
    score = load_script(DIABETES / "score.py")
    score.init()
    return score


def test_diabetes_generator_writes_id_and_features(tmp_path: Path) -> None:
    make_data = load_script(DIABETES / "make_data.py")
    paths = make_data.make_csv_files(tmp_path / "data", files=4)
    assert [p.name for p in paths] == [f"part-{i:03d}.csv" for i in range(4)]
    frames = [pd.read_csv(p) for p in paths]
    assert [len(f) for f in frames] == [111, 111, 110, 110]
    assert all(list(f.columns) == ["id", *FEATURES] for f in frames)
    assert pd.concat(frames)["id"].tolist() == list(range(442))


def test_diabetes_predictions_equal_model_predict(
    diabetes_scorer: ModuleType, azureml_env: Path, tmp_path: Path
) -> None:
    import joblib
    from sklearn.datasets import load_diabetes

    make_data = load_script(DIABETES / "make_data.py")
    paths = make_data.make_csv_files(tmp_path / "data", files=3)
    model = joblib.load(azureml_env / "model" / "model.joblib")

    outputs = []
    for path in paths:
        rows = pd.read_csv(path)
        for start in range(0, len(rows), 10):  # mini_batch_size: 10, as in deployment.yml
            mini_batch = rows.iloc[start : start + 10]
            out = diabetes_scorer.run(mini_batch)
            assert list(out.columns) == ["id", "prediction"]
            assert out["id"].tolist() == mini_batch["id"].tolist()
            np.testing.assert_array_equal(
                out["prediction"].to_numpy(), model.predict(mini_batch[FEATURES])
            )
            outputs.append(out)

    scored = pd.concat(outputs, ignore_index=True)
    assert scored["id"].tolist() == list(range(442))
    data = load_diabetes(as_frame=True).data
    np.testing.assert_allclose(scored["prediction"].to_numpy(), model.predict(data), rtol=1e-12)


def test_diabetes_missing_feature_raises(diabetes_scorer: ModuleType) -> None:
    mini_batch = pd.DataFrame({"id": [1], **{name: [0.0] for name in FEATURES[:-1]}})
    with pytest.raises(KeyError, match="s6"):
        diabetes_scorer.run(mini_batch)


def test_diabetes_run_before_init_raises(azureml_env: Path) -> None:
    score = load_script(DIABETES / "score.py")
    with pytest.raises(RuntimeError, match="before init"):
        score.run(pd.DataFrame({"id": [1]}))
