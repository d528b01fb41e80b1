"""Batch endpoints over models: SQL in and out through `endpoint invoke`, the REST API, and
the bad input of model endpoints (a model reference that does not resolve, a failing query)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.endpoints import create_endpoint, invoke_endpoint, tabular_endpoint_spec
from batchscore.errors import InputError, SpecError, UsageError
from batchscore.jobs import get_job
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace
from cli.cli_checks import assert_one_error
from service.svc_helpers import TestClient, wait_for


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(LinearRegression().fit(x, 3 * x["a"] - x["b"]), folder / "model.joblib")
    return folder


@pytest.fixture
def source_db(tmp_path: Path) -> str:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER, a REAL, b REAL)")
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?)",
                         [(i, i / 10, 1.0) for i in range(25)])
    return f"sqlite:///{path}"


def test_sql_in_sql_out_through_the_cli(ws: Workspace, model_dir: Path, source_db: str,
                                        tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    made = runner.invoke(app, ["endpoint", "create", "lin", "--model", str(model_dir),
                               "--keys", "id", "--features", "a,b"], env=env)
    assert made.exit_code == 0, made.output
    out = f"sqlite:///{tmp_path / 'scores.db'}"
    done = runner.invoke(app, ["endpoint", "invoke", "lin", "-i", source_db, "--query",
                               "SELECT * FROM readings WHERE id < 20", "-o", out,
                               "--table", "scores", "--wait", "--no-progress"], env=env)
    assert done.exit_code == 0, done.output
    with sqlite3.connect(tmp_path / "scores.db") as conn:
        rows = conn.execute("SELECT id, prediction, batchscore_job_id FROM scores "
                            "ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(20))
    assert all(abs(p - (3 * i / 10 - 1.0)) < 1e-9 for i, p, _ in rows)
    assert len({r[2] for r in rows}) == 1


def test_a_failing_query_gives_the_databases_message(ws: Workspace, model_dir: Path,
                                                     source_db: str, tmp_path: Path) -> None:
    create_endpoint(ws, "lin", tabular_endpoint_spec("lin", str(model_dir), keys=["id"]))
    with pytest.raises(InputError, match="no such column: c"):
        invoke_endpoint(ws, "lin", [source_db], str(tmp_path / "out/"),
                        query="SELECT c FROM readings", start=False)


def test_a_model_reference_that_does_not_resolve_is_refused(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="models:/nope@production does not resolve"):
        create_endpoint(ws, "x", tabular_endpoint_spec("x", "models:/nope@production"))
    result = CliRunner().invoke(app, ["endpoint", "create", "x", "--model",
                                      "models:/nope@production"],
                                env={"BATCHSCORE_WORKSPACE": str(ws.settings.root)})
    assert_one_error(result, "models:/nope@production does not resolve")


def test_bad_model_options_are_refused(ws: Workspace, model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"holds no g=\.\.\. folders"):
        create_endpoint(ws, "x", tabular_endpoint_spec("x", str(model_dir), group_by=["g"]))
    with pytest.raises(SpecError, match="does not exist"):
        tabular_endpoint_spec("x", str(tmp_path / "missing"))


def test_model_endpoint_through_the_rest_api(ws: Workspace, model_dir: Path) -> None:
    frame = pd.DataFrame({"id": range(30), "a": np.linspace(0, 1, 30), "b": 0.5})
    path = ws.data.local_path("incoming", "rows.parquet")
    path.parent.mkdir(parents=True)
    frame.to_parquet(path)
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'a', 'admin')[1]}"}
    with TestClient(create_app(ws, ServiceConfig(run_slots=1))) as client:
        made = client.post("/api/v1/endpoints", headers=admin, json={
            "name": "lin", "model": str(model_dir), "keys": ["id"], "features": ["a", "b"],
            "settings": {"mini_batch_size": 10}})
        assert made.status_code == 201, made.text
        answer = client.post("/api/v1/endpoints/lin/invoke", headers=admin, json={
            "inputs": ["incoming/*.parquet"], "output": "scored/lin/"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        job = wait_for(lambda: (j := get_job(ws, job_id)).finished and j, timeout=120)
        assert job.state == "succeeded", job.reason
        rows = client.get(f"/api/v1/jobs/{job_id}/output/rows", headers=admin).json()
        assert rows["total"] == 30
        bad = client.post("/api/v1/endpoints", headers=admin,
                          json={"name": "nope", "model": "models:/nope@production"})
        assert bad.status_code == 400 and "does not resolve" in bad.json()["detail"]
