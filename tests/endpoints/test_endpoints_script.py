"""Batch endpoints over entry scripts: create, invoke (asynchronous and --wait), the REST API,
and every bad input of the endpoint commands. (Model endpoints: test_endpoints_tabular.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.endpoints import (
    EndpointExistsError,
    EndpointNotFoundError,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    invocations,
    invoke_endpoint,
    list_endpoints,
)
from batchscore.errors import InputError, ScriptError, SpecError
from batchscore.jobs import get_job
from batchscore.jobs.spec import spec_from_mapping
from batchscore.pipelines import get_run
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace
from cli.cli_checks import assert_one_error
from service.svc_helpers import TestClient, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diabetes-csv"


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The diabetes-csv example's model and three CSV files of rows."""
    root = tmp_path_factory.mktemp("diabetes")
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--out", str(root)], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, str(EXAMPLE / "make_data.py"), str(root / "data"),
                    "--files", "2"], check=True, capture_output=True)
    return root


def _script_spec(name: str, diabetes: Path):
    return spec_from_mapping({"name": name, "scoring_script": str(EXAMPLE / "score.py"),
                              "model_dir": str(diabetes / "model"), "input_format": "csv",
                              "mini_batch_size": 50, "max_concurrency_per_instance": 1})


def _expected_ids(diabetes: Path) -> list[int]:
    rows = pd.concat(pd.read_csv(p) for p in sorted((diabetes / "data").glob("*.csv")))
    return rows["id"].tolist()


def _ids(out: Path) -> list[int]:
    return [int(line.split()[0]) for line in (out / "predictions.csv").read_text().splitlines()]


def test_invoke_returns_at_once_and_a_detached_runner_finishes_the_job(
        ws: Workspace, diabetes: Path, tmp_path: Path) -> None:
    create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    inv = invoke_endpoint(ws, "diabetes", [str(diabetes / "data" / "*.csv")],
                          str(tmp_path / "out"))
    assert inv.created
    assert get_job(ws, inv.job_id).state in ("queued", "running", "succeeded")
    job = wait_for(lambda: (j := get_job(ws, inv.job_id)).finished and j, timeout=120)
    assert job.state == "succeeded", job.reason
    assert _ids(tmp_path / "out") == _expected_ids(diabetes)
    run = wait_for(lambda: (r := get_run(ws.engine, inv.run_id)).finished and r, timeout=30)
    assert run.state == "succeeded" and run.job_id == inv.job_id
    assert [i["id"] for i in invocations(ws, "diabetes")] == [inv.run_id]
    # the job is the endpoint's: its name and the run's parameters say so
    assert job.name == "diabetes"
    assert run.params["endpoint"] == "diabetes"


def test_invoking_the_same_unfinished_job_twice_gives_it_back(
        ws: Workspace, diabetes: Path, tmp_path: Path) -> None:
    create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    first = invoke_endpoint(ws, "diabetes", [str(diabetes / "data" / "*.csv")],
                            str(tmp_path / "out"), start=False)
    again = invoke_endpoint(ws, "diabetes", [str(diabetes / "data" / "*.csv")],
                            str(tmp_path / "out"), start=False)
    assert (again.job_id, again.run_id, again.created) == (first.job_id, first.run_id, False)
    keyed = invoke_endpoint(ws, "diabetes", [str(diabetes / "data" / "*.csv")],
                            str(tmp_path / "other"), start=False, run_key="k1")
    twice = invoke_endpoint(ws, "diabetes", [str(diabetes / "data" / "*.csv")],
                            str(tmp_path / "other"), start=False, run_key="k1")
    assert (twice.run_id, twice.created) == (keyed.run_id, False)


def test_cli_create_invoke_wait_show_list_delete(ws: Workspace, diabetes: Path,
                                                 tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"BATCHSCORE_WORKSPACE": str(ws.settings.root)}

    def cli(*args: str):
        return runner.invoke(app, list(args), env=env)

    result = cli("endpoint", "create", "diabetes", "--script", str(EXAMPLE / "score.py"),
                 "--model-dir", str(diabetes / "model"), "--input-format", "csv",
                 "--mini-batch-size", "40", "--workers", "1", "--description", "demo")
    assert result.exit_code == 0, result.output
    assert "endpoint diabetes created (script" in result.output
    result = cli("endpoint", "invoke", "diabetes", "-i", str(diabetes / "data" / "*.csv"),
                 "-o", str(tmp_path / "out"), "--wait", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    assert _ids(tmp_path / "out") == _expected_ids(diabetes)
    result = cli("endpoint", "show", "diabetes")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "demo" in result.output
    assert "diabetes" in cli("endpoint", "list").output
    assert cli("endpoint", "delete", "diabetes").exit_code == 0
    assert list_endpoints(ws) == []


def test_rest_api_create_needs_operator_and_invoke_runs_in_the_service(
        ws: Workspace, diabetes: Path) -> None:
    create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    for i, src in enumerate(sorted((diabetes / "data").glob("*.csv"))):
        ws.data.put_file(src, f"incoming/rows-{i}.csv")
    viewer = {"Authorization": f"Bearer {create_token(ws.engine, 'v', 'viewer')[1]}"}
    operator = {"Authorization": f"Bearer {create_token(ws.engine, 'o', 'operator')[1]}"}
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'a', 'admin')[1]}"}
    with TestClient(create_app(ws, ServiceConfig(run_slots=1))) as client:
        body = {"inputs": ["incoming/*.csv"], "output": "scored/diabetes/"}
        assert client.post("/api/v1/endpoints/diabetes/invoke", json=body,
                           headers=viewer).status_code == 403
        answer = client.post("/api/v1/endpoints/diabetes/invoke", json=body, headers=operator)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]

        def finished() -> dict | None:
            job = client.get(f"/api/v1/jobs/{job_id}", headers=viewer).json()
            return job if job["state"] in ("succeeded", "failed") else None

        job = wait_for(finished, timeout=120)
        assert job["state"] == "succeeded", job["reason"]
        assert _ids(ws.data.local_path("scored", "diabetes")) == _expected_ids(diabetes)
        shown = client.get("/api/v1/endpoints/diabetes", headers=viewer).json()
        assert shown["invocations"][0]["job_id"] == job_id
        assert [e["name"] for e in client.get("/api/v1/endpoints", headers=viewer).json()] \
            == ["diabetes"]
        # paths outside the data store are refused before anything is recorded
        bad = client.post("/api/v1/endpoints/diabetes/invoke", headers=operator,
                          json={"inputs": ["../../etc/passwd"], "output": "x/"})
        assert bad.status_code == 400 and "leaves the data store" in bad.json()["detail"]
        missing = client.post("/api/v1/endpoints/nope/invoke", headers=operator, json=body)
        assert missing.status_code == 404
        assert client.post("/api/v1/endpoints", headers=operator, json={
            "name": "other", "model": str(diabetes / "model")}).status_code == 403
        assert client.delete("/api/v1/endpoints/diabetes", headers=operator).status_code == 403
        assert client.delete("/api/v1/endpoints/diabetes", headers=admin).status_code == 200


# --- bad input ---------------------------------------------------------------------------


def test_a_taken_name_is_refused(ws: Workspace, diabetes: Path) -> None:
    create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    with pytest.raises(EndpointExistsError, match="endpoint 'diabetes' exists already"):
        create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    assert get_endpoint(ws, "diabetes").kind == "script"


@pytest.mark.parametrize("name", ["", "Upper", "-dash", "a b", "x" * 64, "semi;colon"])
def test_bad_names_are_refused(ws: Workspace, diabetes: Path, name: str) -> None:
    with pytest.raises(SpecError, match="endpoint name"):
        create_endpoint(ws, name, _script_spec("x", diabetes))


def test_unknown_endpoint(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(EndpointNotFoundError, match="no endpoint named 'nope'"):
        invoke_endpoint(ws, "nope", ["a.csv"], str(tmp_path / "o"))
    with pytest.raises(EndpointNotFoundError):
        delete_endpoint(ws, "nope")


def test_missing_script_is_refused_at_create(ws: Workspace, tmp_path: Path) -> None:
    spec = spec_from_mapping({"scoring_script": str(tmp_path / "missing.py")})
    with pytest.raises(ScriptError, match="does not exist"):
        create_endpoint(ws, "x", spec)
    assert list_endpoints(ws) == []


def test_invoke_without_input_or_with_missing_files(ws: Workspace, diabetes: Path,
                                                    tmp_path: Path) -> None:
    create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    with pytest.raises(InputError, match="no input"):
        invoke_endpoint(ws, "diabetes", [], str(tmp_path / "o"), start=False)
    with pytest.raises(InputError, match=r"nothing\.csv"):
        invoke_endpoint(ws, "diabetes", [str(tmp_path / "nothing.csv")], str(tmp_path / "o"),
                        start=False)
    with pytest.raises(SpecError, match="--query needs an endpoint that scores a model"):
        invoke_endpoint(ws, "diabetes", ["sqlite:///x.db"], str(tmp_path / "o"),
                        query="SELECT 1", start=False)


def test_cli_bad_input_is_one_line(ws: Workspace, diabetes: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    result = runner.invoke(app, ["endpoint", "create"], env=env)
    assert_one_error(result, "no endpoint name given")
    result = runner.invoke(app, ["endpoint", "create", "x", "--model", "m",
                                 "--script", "s.py"], env=env)
    assert_one_error(result, "got --model, --script")
    result = runner.invoke(app, ["endpoint", "create", "x", "--model",
                                 str(tmp_path / "no-model")], env=env)
    assert_one_error(result, "model folder", "does not exist")
    result = runner.invoke(app, ["endpoint", "invoke", "nope", "-i", "a.csv", "-o", "o"],
                           env=env)
    assert_one_error(result, "no endpoint named 'nope'")
    create_endpoint(ws, "diabetes", _script_spec("diabetes", diabetes))
    result = runner.invoke(app, ["endpoint", "create", "diabetes", "--script",
                                 str(EXAMPLE / "score.py")], env=env)
    assert_one_error(result, "exists already")


def test_passwords_in_database_urls_are_hidden_from_people(ws: Workspace) -> None:
    from batchscore.redact import hide_password

    assert hide_password("postgresql://scorer:s3cret@db:5432/crm") == \
        "postgresql://scorer:***@db:5432/crm"
    assert hide_password("postgresql://scorer@db/crm") == "postgresql://scorer@db/crm"
    assert hide_password("file:///data/x.csv") == "file:///data/x.csv"
