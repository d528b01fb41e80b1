"""Retraining as a published pipeline: a schedule or new data under a prefix starts
train-evaluate-register, executed like any other pipeline run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from batchscore.errors import InputError, UsageError
from batchscore.pipelines import claim_run, execute_run, get_run, request_run
from batchscore.registry.models import list_models
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.triggers import create_trigger
from batchscore.triggers.watch import ScanState, scan_storage, tick_schedule

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"


def _project_data():
    spec = importlib.util.spec_from_file_location("diabetes_data", PROJECT / "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _execute(ws, run_id):
    assert claim_run(ws, run_id)
    return execute_run(ws, run_id)


def test_a_schedule_retrains_and_registers_a_version(mws):
    trigger = create_trigger(mws, "nightly", "train-evaluate-register",
                             params={"project": str(PROJECT)}, cron="0 3 * * *")
    run = tick_schedule(mws, trigger, now=trigger.created_at + 2 * 86400)
    assert run is not None
    done = _execute(mws, run.id)
    assert done.state == "succeeded", done.reason
    assert "diabetes version" in (done.reason or "")
    versions = list_models(mws, "diabetes")
    assert versions
    assert versions[-1].tags["batchscore.pipeline_run"] == run.id


def test_new_data_under_a_prefix_retrains_on_that_data(mws):
    data = _project_data().load().sample(frac=0.9, random_state=3)
    trigger = create_trigger(mws, "new-data", "train-evaluate-register",
                             params={"project": str(PROJECT)}, prefix="training/",
                             pattern="*.csv", output="retrain-logs/", settle_seconds=0)
    path = mws.data.local_path("training", "batch-1.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(path, index=False)
    state = ScanState()
    started = scan_storage(mws, trigger, state)  # settle_seconds=0: at first sight
    assert len(started) == 1 and started[0].params["input"] == "training/batch-1.csv"
    done = _execute(mws, started[0].id)
    assert done.state == "succeeded", done.reason
    import pandas as pd

    from batchscore.mlops.flow import data_hash

    trained_on = pd.read_csv(path)
    version = list_models(mws, "diabetes")[-1]
    assert version.tags["batchscore.data_hash"] == data_hash(trained_on)
    assert scan_storage(mws, trigger, state) == []  # the same blob never starts twice


def test_bad_training_data_fails_the_run_with_the_data_tests_report(mws):
    bad = _project_data().load().drop(columns=["bmi"])
    path = mws.data.local_path("training-bad", "x.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    bad.to_csv(path, index=False)
    run = request_run(mws, "train-evaluate-register",
                      {"project": str(PROJECT), "input": "training-bad/x.csv"})
    done = _execute(mws, run.id)
    assert done.state == "failed"
    assert "bmi" in (done.reason or "")


def test_bad_parameters_are_refused_before_a_run_is_recorded(mws, tmp_path):
    with pytest.raises(UsageError, match=r"params\.yaml"):
        request_run(mws, "train-evaluate-register", {"project": str(tmp_path)})
    with pytest.raises(InputError, match=r"must be a \.csv or \.parquet"):
        request_run(mws, "train-evaluate-register",
                    {"project": str(PROJECT), "input": "training/x.txt"})
    with pytest.raises(InputError, match="leaves the data store"):
        request_run(mws, "train-evaluate-register",
                    {"project": str(PROJECT), "input": "../x.csv"})


def test_starting_a_retraining_run_through_the_api_needs_admin(mws):
    from service.svc_helpers import TestClient

    operator = {"Authorization": f"Bearer {create_token(mws.engine, 'op', 'operator')[1]}"}
    admin = {"Authorization": f"Bearer {create_token(mws.engine, 'adm', 'admin')[1]}"}
    with TestClient(create_app(mws, ServiceConfig(background=False))) as client:
        body = {"project": str(PROJECT)}
        url = "/api/v1/pipelines/train-evaluate-register/runs"
        assert client.post(url, json=body, headers=operator).status_code == 403
        answer = client.post(url, json=body, headers=admin)
        assert answer.status_code == 202, answer.text
        assert get_run(mws.engine, answer.json()["id"]).state == "queued"


def test_pointing_mlflow_at_a_workspace_leaves_the_environment_alone(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports $MLFLOW_TRACKING_URI; a second workspace in this process
    (or a process it starts) must still get its own registry, and the user's URI wins."""
    import os

    import mlflow

    from batchscore.registry.models import registry_uri, use_registry
    from batchscore.workspace import init_workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = init_workspace(tmp_path / "a"), init_workspace(tmp_path / "b")
    assert use_registry(first).endswith("/a/mlflow.db")
    assert mlflow.get_tracking_uri().endswith("/a/mlflow.db")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert registry_uri(second).endswith("/b/mlflow.db")
    users = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", users)
    assert registry_uri(second) == users
    use_registry(first)
    assert os.environ["MLFLOW_TRACKING_URI"] == users
    use_registry(first)  # mlflow's globals back on a workspace of this test's own
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    use_registry(first)
