"""Every command that loads a user's model answers a model that cannot be loaded with one
line naming where the model is and the loader's own error, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from batchscore.workspace import Workspace
from cli.cli_checks import Invoke, assert_one_error
from service.svc_helpers import make_clip

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
# what the loaders say about the files below (their own words, quoted in the error)
PICKLE_ERROR = "UnpicklingError"
MLFLOW_ERROR = "ValueError: invalid literal for int()"


@pytest.fixture(autouse=True)
def _no_ambient_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def broken_mlflow_folder(path: Path) -> Path:
    """A folder that looks like an MLflow scikit-learn model, its pickle garbage."""
    path.mkdir(parents=True)
    (path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: "
                                  "mlflow.sklearn\n    model_path: model.pkl\n")
    (path / "model.pkl").write_text("garbage\n")
    return path


def good_joblib_folder(path: Path) -> Path:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    path.mkdir(parents=True)
    joblib.dump(LinearRegression().fit(frame[["x"]], frame["y"]), path / "model.joblib")
    return path


def broken_registry_version(ws: Workspace, name: str, source: Path | str, alias: str) -> int:
    """A registered version whose artifacts are ``source`` (broken or missing)."""
    from batchscore.registry.models import client, use_registry

    use_registry(ws)
    c = client(ws)
    if not c.search_registered_models(f"name = '{name}'"):
        c.create_registered_model(name)
    mv = c.create_model_version(name, str(source))
    c.set_registered_model_alias(name, alias, mv.version)
    return int(mv.version)


def test_endpoint_create_on_a_broken_mlflow_folder(invoke: Invoke, ws: Workspace,
                                                   tmp_path: Path) -> None:
    from batchscore.endpoints import list_endpoints

    folder = broken_mlflow_folder(tmp_path / "model")
    assert_one_error(invoke("endpoint", "create", "e", "--model", str(folder)),
                     f"model folder {folder} cannot be loaded", MLFLOW_ERROR)
    assert list_endpoints(ws) == []


@pytest.mark.parametrize("layout", ["folder", "file"])
def test_endpoint_create_on_a_broken_pickle(invoke: Invoke, tmp_path: Path,
                                            layout: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"\x80\x04not a pickle at all")
    ref = folder if layout == "folder" else folder / "model.joblib"
    assert_one_error(invoke("endpoint", "create", "e", "--model", str(ref)),
                     f"model {folder / 'model.joblib'} cannot be loaded:")


def test_endpoint_invoke_after_the_model_broke(invoke: Invoke, tmp_path: Path) -> None:
    folder = good_joblib_folder(tmp_path / "model")
    created = invoke("endpoint", "create", "e", "--model", str(folder))
    assert created.exit_code == 0, created.output
    (folder / "model.joblib").write_bytes(b"\x80\x04broken since")
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n2\n")
    assert_one_error(invoke("endpoint", "invoke", "e", "--input", str(data), "--output",
                            str(tmp_path / "out"), "--wait", "--no-progress"),
                     f"model {folder / 'model.joblib'} cannot be loaded:")
    assert not (tmp_path / "out").exists()


def test_job_run_of_a_tabular_spec_with_a_broken_model(invoke: Invoke, tmp_path: Path) -> None:
    folder = broken_mlflow_folder(tmp_path / "model")
    spec = tmp_path / "job.yml"
    spec.write_text(f"kind: tabular\noptions:\n  model: {folder}\n")
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    assert_one_error(invoke("job", "run", str(spec), "--input", str(data), "--output",
                            str(tmp_path / "out"), "--no-progress"),
                     f"model folder {folder} cannot be loaded", MLFLOW_ERROR)


def test_model_serve_of_a_broken_folder_and_a_broken_version(invoke: Invoke, ws: Workspace,
                                                             tmp_path: Path) -> None:
    folder = broken_mlflow_folder(tmp_path / "model")
    assert_one_error(invoke("model", "serve", "--model-dir", str(folder), "--no-log"),
                     f"model folder {folder} cannot be loaded", MLFLOW_ERROR)
    broken_registry_version(ws, "broken", folder, "production")
    assert_one_error(invoke("model", "serve", "broken@production", "--no-log"),
                     f"model models:/broken/1 ({folder}) cannot be loaded", MLFLOW_ERROR)
    # a registered version whose artifacts are gone
    gone = tmp_path / "deleted"
    broken_registry_version(ws, "broken", gone, "staging")
    assert_one_error(invoke("model", "serve", "broken@staging", "--no-log"),
                     f"model models:/broken/2 ({gone}) cannot be loaded")
    assert_one_error(invoke("endpoint", "create", "e", "--model", "models:/broken@production"),
                     "model models:/broken@production cannot be loaded", MLFLOW_ERROR)


def test_model_deploy_and_release_of_a_broken_version(invoke: Invoke, ws: Workspace,
                                          tmp_path: Path) -> None:
    folder = broken_mlflow_folder(tmp_path / "model")
    broken_registry_version(ws, "broken", folder, "production")
    assert_one_error(invoke("model", "deploy", "broken", "--port", "0", "--no-log",
                            "--timeout", "600"),
                     "cannot deploy broken/1 (production)",
                     f"model models:/broken/1 ({folder}) cannot be loaded", MLFLOW_ERROR)
    assert_one_error(invoke("model", "release", "broken", "--version", "1", "--timeout", "600"),
                     "cannot deploy broken/1 (staging)",
                     f"model models:/broken/1 ({folder}) cannot be loaded", MLFLOW_ERROR)


def test_a_version_whose_artifact_store_cannot_be_read(invoke: Invoke, ws: Workspace,
                                                       tmp_path: Path) -> None:
    """Artifacts at a location MLflow has no store for (an artifact store that is gone)."""
    broken_registry_version(ws, "broken", "nosuch://store/model", "production")
    fragment = "Could not find a registered artifact repository for: nosuch://store/"
    out = tmp_path / "recipe"
    assert_one_error(invoke("model", "dockerfile", "broken@production", "--out", str(out)),
                     "the artifacts of models:/broken/1 (nosuch://store/model) cannot be read",
                     fragment)
    assert not out.exists() or not any(out.iterdir())
    assert_one_error(invoke("model", "serve", "broken@production", "--no-log"),
                     "model models:/broken/1 (nosuch://store/model) cannot be loaded", fragment)
    assert_one_error(invoke("endpoint", "create", "e", "--model", "models:/broken@production"),
                     "model models:/broken@production: its artifacts cannot be read", fragment)


def test_retraining_against_a_broken_production_version(invoke: Invoke, ws: Workspace,
                                                        tmp_path: Path) -> None:
    folder = broken_mlflow_folder(tmp_path / "model")
    broken_registry_version(ws, "diabetes", folder, "production")
    result = invoke("pipeline", "run", "train-evaluate-register", "--project", str(PROJECT))
    assert_one_error(result, f"the production version models:/diabetes/1 ({folder}) cannot be "
                     "loaded to compare with", MLFLOW_ERROR)
    from batchscore.mlops import list_models

    assert [v.version for v in list_models(ws, "diabetes")] == [1]  # nothing registered


def test_video_stylize_with_a_model_card_of_a_broken_onnx_file(invoke: Invoke,
                                                               tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    (tmp_path / "net.onnx").write_bytes(b"not a protobuf")
    card = tmp_path / "card.json"
    card.write_text('{"path": "net.onnx"}')
    out = tmp_path / "out.mp4"
    assert_one_error(invoke("video", "stylize", str(clip), "-o", str(out), "--model-card",
                            str(card), "--no-progress"),
                     f"ONNX model {tmp_path / 'net.onnx'} cannot be loaded", "INVALID_PROTOBUF")
    assert not out.exists()
