"""Registered models and data assets: ``model create``, ``data create``, and every form of
``model:`` a deployment YAML may use, resolved against the workspace registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from azureml.az_helpers import expected, save_pickle
from batchscore.errors import InputError, ModelNotFoundError, SpecError
from batchscore.jobs.control import list_jobs, submit_job
from batchscore.jobs.refs import model_ref
from batchscore.jobs.spec import load_spec
from batchscore.registry.assets import (
    get_data,
    register_data,
    register_model,
    resolve_model,
)
from batchscore.registry.models import client
from batchscore.workspace import Workspace


def _one_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_model_create_from_yaml_and_flags_lists_both_types(layout, cli, ws: Workspace
                                                           ) -> None:
    root = layout("heart-mlflow")
    result = cli(root, "model", "create", "-f", "model.yml")
    assert result.exit_code == 0, result.output
    assert "heart-classifier-mlflow version 1 registered (mlflow_model" in result.output
    save_pickle(root / "pickled")
    result = cli(root, "model", "create", "--name", "heart-pickle", "--path", "pickled",
                 "--type", "custom_model", "--version", "7", "--tag", "team=cardio",
                 "--description", "a pickle")
    assert result.exit_code == 0, result.output
    listed = [line.split() for line in cli(root, "model", "list").output.splitlines()]
    assert ["heart-classifier-mlflow/1", "mlflow_model", "version", "1"] in listed
    assert ["heart-pickle/1", "custom_model", "version", "7"] in listed
    shown = cli(root, "model", "show", "heart-pickle", "--json").output
    assert '"team": "cardio"' in shown and '"azureml.type": "custom_model"' in shown
    # the files were copied into the registry: removing the folder changes nothing
    (root / "pickled" / "model.pkl").unlink()
    resolved = resolve_model(ws, "azureml:heart-pickle:7")
    assert resolved.location.endswith("/pickled")
    assert Path(resolved.location.removeprefix("file://"), "model.pkl").is_file()


def test_model_create_refuses_bad_input(layout, cli, tmp_path: Path) -> None:
    root = layout("heart-mlflow")
    save_pickle(root / "pickled")
    out = _one_error(cli(root, "model", "create", "--name", "x", "--path", "pickled",
                         "--type", "mlflow_model"))
    assert "not an MLflow model" in out
    out = _one_error(cli(root, "model", "create", "--name", "x", "--path", "nowhere"))
    assert "nowhere' does not exist" in out
    out = _one_error(cli(root, "model", "create", "--name", "../x", "--path", "pickled"))
    assert "model name '../x'" in out
    out = _one_error(cli(root, "model", "create", "--name", "x", "--path", "pickled",
                         "--type", "triton_model"))
    assert "triton_model" in out
    out = _one_error(cli(root, "model", "create", "--path", "pickled"))
    assert "model name is missing" in out
    assert cli(root, "model", "create", "--name", "x", "--path", "pickled",
               "--version", "3").exit_code == 0
    out = _one_error(cli(root, "model", "create", "--name", "x", "--path", "pickled",
                         "--version", "3"))
    assert "has a version 3 already" in out
    (root / "bad.yml").write_text("name: x\npath: pickled\nflavour: sklearn\n")
    out = _one_error(cli(root, "model", "create", "-f", "bad.yml"))
    assert "unknown key 'flavour'" in out


@pytest.fixture
def registered(ws: Workspace, tmp_path: Path) -> Path:
    """heart/1 (label production), heart/2 (Azure version 2.1), both pickles."""
    save_pickle(tmp_path / "m1" / "model")
    save_pickle(tmp_path / "m2" / "model")
    register_model(ws, "heart", str(tmp_path / "m1" / "model"))
    register_model(ws, "heart", str(tmp_path / "m2" / "model"), version="2.1")
    client(ws).set_registered_model_alias("heart", "production", "1")
    return tmp_path


@pytest.mark.parametrize(("value", "version"), [
    ("azureml:heart@latest", 2),
    ("azureml:heart@production", 1),
    ("azureml:heart:1", 1),
    ("azureml:heart:2.1", 2),
    ({"name": "heart", "version": 1}, 1),
    ({"name": "heart"}, 2),
    ("models:/heart/1", 1),
    ("models:/heart@production", 1),
])
def test_every_model_form_resolves(ws: Workspace, registered: Path, value, version) -> None:
    ref = model_ref(value, "deployment.yml")
    assert ref is not None
    assert resolve_model(ws, ref).version == version


@pytest.mark.parametrize(("ref", "message"), [
    ("azureml:nope@latest", "no registered model named 'nope'; models are heart"),
    ("azureml:heart:9", "model 'heart' has no version 9; versions are 1, 2.1"),
    ("azureml:heart@staging", "no version labelled 'staging'; labels are latest, production"),
])
def test_unknown_model_is_one_error_naming_what_exists(ws: Workspace, registered: Path,
                                                       ref: str, message: str) -> None:
    with pytest.raises(ModelNotFoundError, match=message):
        resolve_model(ws, ref)


@pytest.mark.parametrize(("value", "message"), [
    ("azureml:heart", "names no version"),
    ("azureml://registries/azureml/models/heart/versions/1", "shared between workspaces"),
    ({"version": 1}, "needs a path, or a name"),
    ({"name": "heart", "flavor": "x"}, "unknown key model.flavor"),
    (["heart"], "model must be"),
])
def test_bad_model_values_are_refused(value, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        model_ref(value, "deployment.yml")


def test_inline_path_and_models_uri_forms(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "d.yml").write_text("model:\n  path: model\n  type: custom_model\n"
                                    "code_configuration: {code: ., scoring_script: s.py}\n")
    assert load_spec(tmp_path / "d.yml").model_dir == str((tmp_path / "model").resolve())
    (tmp_path / "d.yml").write_text("model: models:/heart@production\n")
    assert load_spec(tmp_path / "d.yml").model_dir == "models:/heart@production"


def test_model_dir_flag_overrides_any_yaml_model(layout, cli, ws: Workspace) -> None:
    """The registry is empty: the YAML's azureml: reference is never read."""
    root = layout("heart-custom")
    (root / "code" / "old-model.pkl").write_bytes(b"a stray pickle beside the code")
    result = cli(root, "job", "run", "deployment.yml", "--model-dir", "model", "--input",
                 "data", "--output", "out", "--no-progress")
    assert result.exit_code == 0, result.output
    lines = (root / "out" / "predictions.csv").read_text().splitlines()
    got: dict[str, list[int]] = {}
    for line in lines:
        name, _, label = line.split()
        got.setdefault(name, []).append(int(label))
    assert got == expected(root / "data")


def test_unknown_model_in_a_deployment_fails_before_any_job(layout, cli, ws: Workspace
                                                            ) -> None:
    root = layout("heart-custom")
    out = _one_error(cli(root, "job", "run", "deployment.yml", "--input", "data",
                         "--output", "out"))
    assert "no registered model named 'heart-classifier-sklearn'" in out
    assert not (root / "out").exists()


def test_data_assets(layout, cli, ws: Workspace) -> None:
    root = layout("heart-mlflow")
    assert cli(root, "data", "create", "-f", "data.yml").exit_code == 0
    result = cli(root, "data", "create", "--name", "heart-dataset-unlabeled", "--path",
                 "data/heart-unlabeled-0.csv", "--type", "uri_file")
    assert result.exit_code == 0, result.output
    assert get_data(ws, "azureml:heart-dataset-unlabeled@latest").version == "2"
    assert get_data(ws, "heart-dataset-unlabeled:1").path == str(root / "data")
    assert "heart-dataset-unlabeled:2  uri_file" in cli(root, "data", "list").output
    out = _one_error(cli(root, "data", "create", "--name", "d", "--path", "data",
                         "--type", "uri_file"))
    assert "is not a file" in out
    out = _one_error(cli(root, "data", "create", "--name", "d", "--path", "data",
                         "--type", "mltable"))
    assert "mltable" in out
    out = _one_error(cli(root, "data", "show", "nothing@latest"))
    assert "no data asset named 'nothing'; data assets are heart-dataset-unlabeled" in out
    with pytest.raises(InputError, match="has no version 5; versions are 1, 2"):
        get_data(ws, "heart-dataset-unlabeled:5")
    with pytest.raises(SpecError, match="has a version 1 already"):
        register_data(ws, "heart-dataset-unlabeled", str(root / "data"), version="1")


def test_mlflow_deployment_without_script_over_a_data_asset(layout, cli, ws: Workspace
                                                            ) -> None:
    """The heart-mlflow folder as it is: model create, data create, job run."""
    root = layout("heart-mlflow")
    assert cli(root, "model", "create", "-f", "model.yml").exit_code == 0
    assert cli(root, "data", "create", "-f", "data.yml").exit_code == 0
    result = cli(root, "job", "run", "deployment.yml", "--input",
                 "azureml:heart-dataset-unlabeled@latest", "--output", "out", "--no-progress")
    assert result.exit_code == 0, result.output
    text = (root / "out" / "predictions.csv").read_text()
    assert text, result.output
    frame = pd.read_csv(root / "out" / "predictions.csv", names=["row", "prediction", "file"])
    want = expected(root / "data")
    assert sorted(set(frame["file"])) == sorted(want)
    for name, labels in want.items():
        part = frame[frame["file"] == name]
        assert part["row"].tolist() == list(range(len(labels)))
        assert part["prediction"].tolist() == labels


def test_registered_mlflow_model_of_a_training_run_resolves(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version MLflow registered itself (no azureml tags) is an mlflow_model."""
    import mlflow

    monkeypatch.chdir(tmp_path)  # the default experiment keeps its artifacts in ./mlruns

    from batchscore.registry.models import use_registry

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return [1] * len(model_input)

    use_registry(ws)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="m", python_model=Constant())
    mlflow.register_model(info.model_uri, "constant")
    resolved = resolve_model(ws, "azureml:constant@latest")
    assert resolved.type == "mlflow_model"
    spec = load_spec(_write(tmp_path / "d.yml", "model: azureml:constant@latest\n"))
    job, _ = submit_job(ws, spec, [str(tmp_path / "in.csv")], str(tmp_path / "out"))
    assert job.spec["scoring_script"].endswith("mlflow_driver.py")
    assert job.spec["options"]["model_ref"] == "azureml:constant@latest -> models:/constant/1"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    if path.name == "d.yml":
        (path.parent / "in.csv").write_text("a\n1\n2\n")
    return path


def test_server_submission_resolves_a_registered_model_in_the_service(
    layout, cli, ws: Workspace, service: str
) -> None:
    """The model is resolved by the service, in its workspace's registry: the script
    travels in the bundle, the model does not."""
    root = layout("heart-custom")
    register_model(ws, "heart-classifier-sklearn", str(root / "model"))
    for path in sorted((root / "data").glob("*.csv")):
        ws.data.write_text(f"incoming/heart/{path.name}", path.read_text())
    result = cli(root, "job", "run", "deployment.yml", "--input", "incoming/heart",
                 "--output", "scored/heart", "--server", service, "--wait", "--no-progress")
    assert result.exit_code == 0, result.output
    lines = ws.data.read_text("scored/heart/predictions.csv").splitlines()
    assert len(lines) == sum(len(v) for v in expected(root / "data").values())
    (job,) = [j for j in list_jobs(ws) if j.output_url.endswith("scored/heart")]
    assert job.spec["options"]["model_ref"] == \
        "azureml:heart-classifier-sklearn:1 -> models:/heart-classifier-sklearn/1"
    unknown = _one_error(cli(root, "job", "run", "deployment.yml", "--model-dir",
                             "azureml:nope@latest", "--input", "incoming/heart",
                             "--output", "scored/nope", "--server", service))
    assert "no registered model named 'nope'" in unknown


def test_model_dir_flag_takes_a_registered_model(layout, cli, ws: Workspace) -> None:
    root = layout("heart-custom")
    register_model(ws, "other-heart", str(root / "model"))
    result = cli(root, "job", "run", "deployment.yml", "--model-dir",
                 "azureml:other-heart@latest", "--input", "data", "--output", "out",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert (root / "out" / "predictions.csv").read_text().count("\n") == \
        sum(len(v) for v in expected(root / "data").values())
