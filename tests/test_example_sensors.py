"""The sensors example: training one anomaly model per (Device, Sensor) into the registry or a
hive-layout folder, its bad input, and the README's commands end to end through the CLI."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from batchscore.jobs import run_job
from batchscore.registry.models import get_version, list_models, rollback, use_registry
from batchscore.service.output_rows import read_output_rows
from batchscore.tabular.job import tabular_spec
from batchscore.workspace import open_workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sensors"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sensors" / "sensor_data.csv"


def _load_train():
    spec = importlib.util.spec_from_file_location("sensors_train", EXAMPLE / "train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


train = _load_train()


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
       code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})
    assert done.returncode == code, done.stdout + done.stderr
    return done


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """The first 120 readings of Devices 1-2, Sensors 1 and 4 of the real data (4 groups)."""
    if not DATA.is_file():
        pytest.skip(f"{DATA} is not here")
    frame = pd.read_csv(DATA)
    picked = frame[frame.Device.isin([1, 2]) & frame.Sensor.isin([1, 4])]
    small = picked.groupby(["Device", "Sensor"]).head(120)
    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    return path


def _normal_and_outlier(frame: pd.DataFrame, device: int, sensor: int) -> pd.DataFrame:
    values = frame[(frame.Device == device) & (frame.Sensor == sensor)].Value
    return pd.DataFrame({"Value": [float(values.median()), float(values.max()) + 1000.0]})


def test_folder_of_joblib_models_in_hive_layout(small_csv, tmp_path):
    out = tmp_path / "models"
    done = sh(sys.executable, str(EXAMPLE / "train.py"), "--data", str(small_csv),
              "--out", str(out), "--format", "joblib")
    assert "Device=2 Sensor=4: 120 readings" in done.stdout
    folders = sorted(p.relative_to(out).as_posix() for p in out.glob("Device=*/Sensor=*"))
    assert folders == ["Device=1/Sensor=1", "Device=1/Sensor=4", "Device=2/Sensor=1",
                       "Device=2/Sensor=4"]
    frame = pd.read_csv(small_csv)
    for folder in folders:
        device, sensor = (int(part.split("=")[1]) for part in folder.split("/"))
        model = joblib.load(out / folder / "model.joblib")
        assert [name for name, _ in model.steps] == ["scaler", "svm"]
        assert type(model.steps[0][1]).__name__ == "StandardScaler"
        assert type(model.steps[1][1]).__name__ == "OneClassSVM"
        assert model.steps[1][1].kernel == "rbf"
        assert model.predict(_normal_and_outlier(frame, device, sensor)).tolist() == [1, -1]


def test_folder_of_mlflow_models_has_the_value_signature(small_csv, tmp_path):
    import mlflow.pyfunc

    frame = train.load_readings(small_csv)
    models = train.train_models(frame[frame.Device == 1])
    written = train.write_folder(models, tmp_path / "models")
    assert [p.relative_to(tmp_path / "models").as_posix() for p in written] == [
        "Device=1/Sensor=1", "Device=1/Sensor=4"]
    loaded = mlflow.pyfunc.load_model(str(written[1]))
    schema = loaded.metadata.get_input_schema()
    assert schema.input_names() == ["Value"]
    assert schema.input_types()[0].name == "double"
    assert list(loaded.predict(_normal_and_outlier(frame, 1, 4))) == [1, -1]
    with pytest.raises(train.UsageError, match="already holds a model"):
        train.write_folder(models, tmp_path / "models")


def test_a_tabular_job_scores_with_the_mlflow_folder(ws, small_csv, tmp_path):
    frame = train.load_readings(small_csv)
    models = train.train_models(frame)
    train.write_folder(models, tmp_path / "models")
    spec = tabular_spec(str(tmp_path / "models"), group_by=["Device", "Sensor"],
                        keys=["TS", "Device", "Sensor", "Value"], features=["Value"],
                        mini_batch_size=200, workers=1)
    job = run_job(ws, spec, [str(small_csv)], str(tmp_path / "scored.csv"))
    assert job.state == "succeeded" and job.items_succeeded == 480, job.reason
    out = pd.read_csv(tmp_path / "scored.csv")
    for t in models:
        mine = out[(out.Device == t.device) & (out.Sensor == t.sensor)]
        assert mine.prediction.tolist() == t.model.predict(mine[["Value"]]).tolist()


def test_registers_one_model_per_sensor_with_production_alias(ws, small_csv):
    import mlflow
    import mlflow.pyfunc

    env = {"BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    done = sh(sys.executable, str(EXAMPLE / "train.py"), "--data", str(small_csv), env=env)
    assert "registered sensor-anomaly-2-4 version 1 (production)" in done.stdout
    versions = list_models(ws)
    assert sorted(v.name for v in versions) == [
        "sensor-anomaly-1-1", "sensor-anomaly-1-4", "sensor-anomaly-2-1", "sensor-anomaly-2-4"]
    assert all(v.aliases == ["production"] and v.version == 1 for v in versions)
    assert all(v.tags["training_rows"] == "120" for v in versions)

    use_registry(ws)  # tracking and registry: another test may have set the registry's
    model = mlflow.pyfunc.load_model("models:/sensor-anomaly-2-4@production")
    assert [i.name for i in model.metadata.get_input_schema().inputs] == ["Value"]
    frame = pd.read_csv(small_csv)
    assert list(model.predict(_normal_and_outlier(frame, 2, 4))) == [1, -1]

    # training again adds versions and moves production through promote: rollback works
    sh(sys.executable, str(EXAMPLE / "train.py"), "--data", str(small_csv), "--nu", "0.2",
       env=env)
    assert get_version(ws, "sensor-anomaly-1-1@production").version == 2
    assert rollback(ws, "sensor-anomaly-1-1").version == 1


@pytest.mark.parametrize("case", ["missing", "no-value", "not-csv", "gamma", "nu"])
def test_bad_input_is_one_line_and_exit_code_2(case, tmp_path, capsys, small_csv):
    args = ["--out", str(tmp_path / "models")]
    data = tmp_path / "data.csv"
    expected = {
        "missing": "does not exist", "no-value": "lacks column(s) Value",
        "not-csv": "column Device must hold integers", "gamma": "--gamma must be a number",
        "nu": "--nu must be in (0, 1]",
    }[case]
    if case == "missing":
        args += ["--data", str(data)]
    elif case == "no-value":
        data.write_text("TS,Device,Sensor,Reading\n2018-08-28 23:00:05,1,1,10.5\n")
        args += ["--data", str(data)]
    elif case == "not-csv":
        data.write_text("TS,Device,Sensor,Value\n2018-08-28 23:00:05,one,1,10.5\n")
        args += ["--data", str(data)]
    else:
        args += ["--data", str(small_csv),
                 *(["--gamma", "wide"] if case == "gamma" else ["--nu", "0"])]
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "models").exists()  # nothing written


def test_no_workspace_fails_before_training(tmp_path, capsys, small_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train.main(["--data", str(small_csv)]) == 2
    captured = capsys.readouterr()
    assert "no batchscore workspace" in captured.err and "batchscore init" in captured.err
    assert "readings" not in captured.out  # refused before fitting anything


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Run it" block, continuation lines joined."""
    text = (EXAMPLE / "README.md").read_text()
    block = text.split("## Run it", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()
            if line.strip()]


@pytest.mark.slow
def test_readme_commands_score_the_real_data_through_a_batch_endpoint(tmp_path):
    """init, train (15 models registered), endpoint create, endpoint invoke --wait: every
    reading is scored by its own sensor's production model."""
    import mlflow
    import mlflow.pyfunc

    if not DATA.is_file():
        pytest.skip(f"{DATA} is not here")
    work = tmp_path / "project"  # the README runs from the repository root: mirror it
    work.mkdir()
    (work / "examples").symlink_to(EXAMPLE.parent)
    (tmp_path / "shared").symlink_to(DATA.parents[2])  # ../shared/data/sensors/...
    commands = readme_commands()
    assert [c[:2] for c in commands] == [
        ["batchscore", "init"], ["python", "examples/sensors/train.py"],
        ["batchscore", "endpoint"], ["batchscore", "endpoint"]]
    outputs = []
    for command in commands:
        program = ([sys.executable, "-m", "batchscore"] if command[0] == "batchscore" else
                   [sys.executable])
        outputs.append(sh(*program, *command[1:], cwd=work).stdout)
    assert outputs[1].count("(production)") == 15
    found = re.search(r"job (job-[0-9a-f-]+) succeeded: 17768/17768 items", outputs[3])
    assert found, outputs[3]

    scored = pd.concat(pd.read_parquet(p) for p in sorted((work / "scored").glob("part-*")))
    assert list(scored.columns) == ["TS", "Device", "Sensor", "Value", "prediction",
                                    "batchscore_job_id"]
    readings = pd.read_csv(DATA)
    key = ["TS", "Device", "Sensor", "Value"]
    assert sorted(map(tuple, scored[key].astype(str).values.tolist())) == sorted(
        map(tuple, readings[key].astype(str).values.tolist()))
    assert set(scored.batchscore_job_id) == {found.group(1)}

    ws = open_workspace(work / ".batchscore")
    try:
        use_registry(ws)
        flagged = 0
        for (device, sensor), rows in scored.groupby(["Device", "Sensor"]):
            model = mlflow.pyfunc.load_model(
                f"models:/sensor-anomaly-{device}-{sensor}@production")
            assert rows.prediction.tolist() == list(model.predict(rows[["Value"]]))
            flagged += int((rows.prediction == -1).sum())
        assert 0 < flagged < len(scored) * 0.1
        page = read_output_rows(ws, found.group(1), limit=10, columns=["prediction"])
        assert page.total == 17768 and page.truncated
    finally:
        ws.close()
