"""Deployment folders in Azure's layout run unchanged: a scoring script that globs
AZUREML_MODEL_DIR finds the model alone; an MLflow model deploys without a script."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from azureml.az_helpers import FEATURES, expected, fitted, save_mlflow, training_frame
from batchscore.endpoints import create_endpoint, get_endpoint, invoke_endpoint
from batchscore.errors import SpecError
from batchscore.jobs import get_job, job_logs, load_spec, run_job
from batchscore.registry.assets import register_model
from batchscore.workspace import Workspace


def _labels(path: Path) -> dict[str, list[int]]:
    got: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        name, _, label = line.split()
        got.setdefault(name, []).append(int(label))
    return got


def test_registered_custom_model_folder_holds_the_model_alone(layout, cli, ws: Workspace
                                                              ) -> None:
    """heart-custom's script loads glob(AZUREML_MODEL_DIR/*/*.pkl)[-1] and refuses to run
    when it finds anything beside the model: a stray pickle in code/ and another model
    registered before do not reach it. Two workers share the one folder made for the job."""
    root = layout("heart-custom")
    (root / "code" / "old-model.pkl").write_bytes(b"a stray pickle beside the code")
    assert cli(root, "model", "create", "--name", "heart-classifier-sklearn", "--path",
               "model", "--version", "1").exit_code == 0
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert _labels(root / "out" / "predictions.csv") == expected(root / "data")


def test_model_dir_of_a_local_folder_is_not_its_parent(ws: Workspace, layout) -> None:
    root = layout("heart-custom")
    (root / "model" / "notes.txt").write_text("kept with the model")
    spec = load_spec(root / "deployment.yml", model_dir=str(root / "model"))
    (root / "decoy").mkdir()
    (root / "decoy" / "other.pkl").write_bytes(b"not the model")
    job = run_job(ws, spec, [str(root / "data")], str(root / "out"))
    assert job.state == "succeeded", job.reason
    assert _labels(root / "out" / "predictions.csv") == expected(root / "data")


def test_mlflow_endpoint_from_the_deployment_yaml(layout, cli, ws: Workspace) -> None:
    """endpoint create --spec deployment.yml (no code_configuration), invoked over a data
    asset; the endpoint keeps azureml:NAME@latest and resolves it per invocation."""
    root = layout("heart-mlflow")
    assert cli(root, "model", "create", "-f", "model.yml").exit_code == 0
    assert cli(root, "data", "create", "-f", "data.yml").exit_code == 0
    result = cli(root, "endpoint", "create", "heart-classifier", "--spec", "deployment.yml")
    assert result.exit_code == 0, result.output
    assert get_endpoint(ws, "heart-classifier").spec["model_dir"] == \
        "azureml:heart-classifier-mlflow@latest"
    result = cli(root, "endpoint", "invoke", "heart-classifier", "--input",
                 "azureml:heart-dataset-unlabeled@latest", "--output", "scored", "--wait",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(root / "scored" / "predictions.csv", names=["row", "prediction", "file"])
    assert len(frame) == sum(len(v) for v in expected(root / "data").values())


def test_deployment_without_script_needs_an_mlflow_model(layout, ws: Workspace) -> None:
    root = layout("heart-custom")
    register_model(ws, "heart-classifier-sklearn", str(root / "model"), version="1")
    (root / "noscript.yml").write_text("model: azureml:heart-classifier-sklearn:1\n")
    spec = load_spec(root / "noscript.yml")
    with pytest.raises(SpecError, match="only MLflow models deploy without a scoring script"):
        create_endpoint(ws, "x", spec)
    with pytest.raises(SpecError, match="only MLflow models deploy without a scoring script"):
        run_job(ws, spec, [str(root / "data")], str(root / "out"))


def _mlflow_job(ws: Workspace, tmp_path: Path, model_dir: Path, data: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "d.yml").write_text(f"model:\n  path: {model_dir}\nmini_batch_size: 1\n"
                                    "error_threshold: -1\n")
    return run_job(ws, load_spec(tmp_path / "d.yml"), [str(data)], str(tmp_path / "out"))


def test_mlflow_parquet_and_csv_inputs(ws: Workspace, tmp_path: Path) -> None:
    X, _ = training_frame()
    data = tmp_path / "data"
    data.mkdir()
    X.iloc[:7].to_csv(data / "a.csv", index=False)
    X.iloc[7:12].to_parquet(data / "b.parquet")
    job = _mlflow_job(ws, tmp_path, save_mlflow(tmp_path / "model"), data)
    assert job.state == "succeeded" and job.items_failed == 0
    frame = pd.read_csv(tmp_path / "out" / "predictions.csv",
                        names=["row", "prediction", "file"])
    want = fitted().predict(X.iloc[:12]).tolist()
    assert frame["prediction"].tolist() == want
    assert frame["file"].tolist() == ["a.csv"] * 7 + ["b.parquet"] * 5
    assert frame["row"].tolist() == list(range(7)) + list(range(5))


def test_mlflow_signature_is_enforced_and_unsupported_files_fail(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    """A value that is not a long in a long column fails its file (named); so does a file
    type the driver does not read; the other files are scored."""
    X, _ = training_frame()
    data = tmp_path / "data"
    data.mkdir()
    X.iloc[:3].to_csv(data / "good.csv", index=False)
    bad = X.iloc[:3].astype(object)
    bad.loc[1, "chol"] = "high"
    bad.to_csv(data / "bad.csv", index=False)
    (data / "notes.json").write_text("{}")
    job = _mlflow_job(ws, tmp_path, save_mlflow(tmp_path / "model"), data)
    assert job.state == "succeeded"  # error_threshold -1
    assert (job.items_succeeded, job.items_failed) == (1, 2)
    errors = job_logs(ws, job.id).errors
    assert "bad.csv'. Column 'chol' must be long" in errors
    assert "File type 'json' is not supported" in errors
    frame = pd.read_csv(tmp_path / "out" / "predictions.csv",
                        names=["row", "prediction", "file"])
    assert frame["file"].tolist() == ["good.csv"] * 3


def test_mlflow_model_with_several_outputs(ws: Workspace, tmp_path: Path) -> None:
    import mlflow.pyfunc

    class Scores(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return pd.DataFrame({"label": (model_input["age"] > 50).astype(int),
                                 "score": model_input["age"] / 100.0})

    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(Schema([ColSpec("long", name) for name in FEATURES]),
                               Schema([ColSpec("long", "label"), ColSpec("double", "score")]))
    with warnings.catch_warnings():  # "An input example was not provided"
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=Scores(),
                                 signature=signature)
    X, _ = training_frame()
    data = tmp_path / "data"
    data.mkdir()
    X.iloc[:4].to_csv(data / "a.csv", index=False)
    job = _mlflow_job(ws, tmp_path, tmp_path / "model", data)
    assert job.state == "succeeded" and job.items_failed == 0, job.reason
    frame = pd.read_csv(tmp_path / "out" / "predictions.csv",
                        names=["row", "prediction", "file"])
    got = [json.loads(p) for p in frame["prediction"]]
    assert got == [{"label": int(a > 50), "score": a / 100.0} for a in X["age"].iloc[:4]]


def test_endpoint_invocation_records_the_resolved_version(layout, ws: Workspace) -> None:
    root = layout("heart-mlflow")
    register_model(ws, "heart-classifier-mlflow", str(root / "model"), type="mlflow_model")
    create_endpoint(ws, "heart", load_spec(root / "deployment.yml"))
    register_model(ws, "heart-classifier-mlflow", str(root / "model"), type="mlflow_model")
    inv = invoke_endpoint(ws, "heart", [str(root / "data")], str(root / "out"), start=False)
    assert get_job(ws, inv.job_id).spec["options"]["model_ref"] == \
        "azureml:heart-classifier-mlflow@latest -> models:/heart-classifier-mlflow/2"


def test_a_model_registered_from_one_file(layout, ws: Workspace) -> None:
    """Azure mounts a one-file model as $AZUREML_MODEL_DIR/<file name>."""
    root = layout("heart-custom")
    register_model(ws, "heart-file", str(root / "model" / "model.pkl"))
    (root / "code" / "by_file.py").write_text(
        "import os\nimport joblib\nimport pandas as pd\n\n\ndef init():\n"
        "    global model\n"
        "    assert os.listdir(os.environ['AZUREML_MODEL_DIR']) == ['model.pkl']\n"
        "    model = joblib.load(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'model.pkl'))\n"
        "\n\ndef run(mini_batch):\n"
        "    return [f'{os.path.basename(p)} {i} {v}' for p in mini_batch\n"
        "            for i, v in enumerate(model.predict(pd.read_csv(p)))]\n")
    (root / "file.yml").write_text("model: azureml:heart-file:1\ncode_configuration:\n"
                                   "  code: code\n  scoring_script: by_file.py\n")
    job = run_job(ws, load_spec(root / "file.yml"), [str(root / "data")], str(root / "out"))
    assert job.state == "succeeded" and job.items_failed == 0, job.reason
    assert _labels(root / "out" / "predictions.csv") == expected(root / "data")
