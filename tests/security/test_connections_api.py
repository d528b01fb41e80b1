"""Operators reach only the databases an admin registered.

Before the fix ``POST /endpoints/{name}/invoke`` took any database URL: ``sqlite:///`` of the
service's own ``state.db`` with a query over ``api_tokens`` returned every token's hash, and an
output URL created a SQLite file anywhere. Now the API takes ``connection:NAME`` only; the
connection's URL never leaves the server; its queries run inside the job, read-only, under its
statement timeout and row cap."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.connections import create_connection, list_connections
from batchscore.endpoints import create_endpoint, tabular_endpoint_spec
from batchscore.errors import InputError
from batchscore.io.sql import snapshot_query
from batchscore.jobs import get_job
from batchscore.pipelines import get_run
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace
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
def headers(ws: Workspace) -> dict[str, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}
            for role in ("viewer", "operator", "admin")}


@pytest.fixture
def client(ws: Workspace, model_dir: Path):  # type: ignore[no-untyped-def]
    create_endpoint(ws, "lin", tabular_endpoint_spec("lin", str(model_dir), keys=["id"],
                                                     features=["a", "b"]))
    with TestClient(create_app(ws, ServiceConfig(run_slots=1))) as c:
        yield c


def _finished_run(ws: Workspace, run_id: str):  # type: ignore[no-untyped-def]
    return wait_for(lambda: (r := get_run(ws.engine, run_id)).finished and r, timeout=120)


def test_the_state_database_cannot_be_read_through_an_invocation(
        ws: Workspace, client: TestClient, headers: dict[str, dict[str, str]],
        tmp_path: Path) -> None:
    state = f"sqlite:///{ws.settings.root / 'state.db'}"
    tokens = "SELECT 1 AS id, name, role, token_hash, 1.0 AS a, 2.0 AS b FROM api_tokens"
    for body in ({"inputs": [state], "query": tokens, "output": "stolen/"},
                 {"inputs": [state], "query": "SELECT 1 AS id, 1.0 AS a, 2.0 AS b",
                  "output": "stolen/"}):
        answer = client.post("/api/v1/endpoints/lin/invoke", headers=headers["operator"],
                             json=body)
        assert answer.status_code == 400, answer.text
        assert "connection:NAME" in answer.json()["detail"]
    outside = tmp_path / "elsewhere.db"
    ws.data.local_path("in").mkdir(parents=True)
    pd.DataFrame({"id": [1], "a": [1.0], "b": [2.0]}).to_csv(
        ws.data.local_path("in", "x.csv"), index=False)
    answer = client.post("/api/v1/endpoints/lin/invoke", headers=headers["operator"], json={
        "inputs": ["in/x.csv"], "output": f"sqlite:///{outside}", "table": "t"})
    assert answer.status_code == 400, answer.text
    assert not outside.exists()
    run = client.post("/api/v1/pipelines/batch-endpoint/runs", headers=headers["operator"],
                      json={"endpoint": "lin", "input": state, "query": "SELECT 1 AS a",
                            "output": "stolen/"})
    assert run.status_code == 400, run.text


@pytest.mark.postgres
def test_connections_are_admins_and_never_show_their_url(
        ws: Workspace, client: TestClient, headers: dict[str, dict[str, str]],
        pg_database: str) -> None:
    url = pg_database.replace("postgresql+psycopg://", "postgresql://")
    password = sa.engine.make_url(pg_database).password
    body = {"name": "warehouse", "url": url, "statement_timeout": 5, "max_rows": 100}
    for role in ("viewer", "operator"):
        assert client.post("/api/v1/connections", headers=headers[role],
                           json=body).status_code == 403
    made = client.post("/api/v1/connections", headers=headers["admin"], json=body)
    assert made.status_code == 201, made.text
    assert made.json()["dialect"] == "postgresql" and "url" not in made.json()
    again = client.post("/api/v1/connections", headers=headers["admin"], json=body)
    assert again.status_code == 409
    sqlite = client.post("/api/v1/connections", headers=headers["admin"], json={
        "name": "state", "url": f"sqlite:///{ws.settings.root / 'state.db'}"})
    assert sqlite.status_code == 400 and "SQLite" in sqlite.json()["detail"]
    for path in ("/api/v1/connections", "/api/v1/connections/warehouse"):
        shown = client.get(path, headers=headers["viewer"])
        assert shown.status_code == 200
        assert "warehouse" in shown.text
        assert url not in shown.text and (not password or password not in shown.text)
    assert client.get("/api/v1/connections/nope", headers=headers["viewer"]).status_code == 404
    assert client.delete("/api/v1/connections/warehouse",
                         headers=headers["operator"]).status_code == 403
    assert client.delete("/api/v1/connections/warehouse",
                         headers=headers["admin"]).status_code == 200
    assert client.get("/api/v1/connections", headers=headers["viewer"]).json() == []


@pytest.fixture
def readings(pg_database: str) -> str:
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE readings (id INTEGER, a REAL, b REAL)"))
        conn.execute(sa.text("INSERT INTO readings SELECT i, i / 10.0, 1.0 "
                             "FROM generate_series(0, 24) AS i"))
        conn.execute(sa.text("CREATE FUNCTION sneak() RETURNS integer LANGUAGE sql AS "
                             "'INSERT INTO readings VALUES (99, 1, 1) RETURNING 1'"))
    engine.dispose()
    return pg_database


def _count(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM readings")).scalar_one()
    engine.dispose()
    return int(n)


@pytest.mark.postgres
def test_queries_run_in_the_job_read_only_with_the_connections_limits(
        ws: Workspace, client: TestClient, headers: dict[str, dict[str, str]],
        readings: str) -> None:
    create_connection(ws, "warehouse", readings, statement_timeout=0.5, max_rows=20,
                      allow_output=False)
    operator = headers["operator"]

    def invoke(query: str, output: str = "scored/", **extra: str):  # type: ignore[no-untyped-def]
        answer = client.post("/api/v1/endpoints/lin/invoke", headers=operator, json={
            "inputs": ["connection:warehouse"], "query": query, "output": output, **extra})
        assert answer.status_code == 202, answer.text
        assert answer.json()["job_id"] is None  # planned by a run slot, not in the request
        return _finished_run(ws, answer.json()["run_id"])

    good = invoke("SELECT * FROM readings WHERE id < 15")
    assert good.state == "succeeded", good.reason
    assert get_job(ws, good.job_id).items_succeeded == 15
    assert "connection:warehouse" in str(good.params)
    shown = client.get(f"/api/v1/jobs/{good.job_id}", headers=headers["viewer"])
    assert shown.status_code == 200 and shown.json()["inputs"] == ["connection:warehouse"]
    host = sa.engine.make_url(readings).host or ""
    assert readings not in shown.text and f"@{host}" not in shown.text
    run_view = client.get(f"/api/v1/runs/{good.id}", headers=headers["viewer"]).text
    assert f"@{host}" not in run_view

    capped = invoke("SELECT * FROM readings")  # 25 rows > max_rows 20
    assert capped.state == "failed" and "more than 20 rows" in (capped.reason or "")

    slow = invoke("SELECT id, a, b FROM readings, pg_sleep(5) LIMIT 1")
    assert slow.state == "failed" and "statement timeout" in (slow.reason or "")

    writes = invoke("SELECT id, a, b FROM readings WHERE sneak() = 1")
    assert writes.state == "failed" and "read-only" in (writes.reason or "")
    assert _count(readings) == 25

    refused = client.post("/api/v1/endpoints/lin/invoke", headers=operator, json={
        "inputs": ["connection:warehouse"], "query": "SELECT * FROM readings",
        "output": "connection:warehouse", "table": "scores"})
    assert refused.status_code == 400 and "takes no outputs" in refused.text
    unknown = client.post("/api/v1/endpoints/lin/invoke", headers=operator, json={
        "inputs": ["connection:nope"], "query": "SELECT 1", "output": "x/"})
    assert unknown.status_code == 404 and "no connection named 'nope'" in unknown.text


@pytest.mark.postgres
def test_outputs_go_to_a_connection_that_allows_them(
        ws: Workspace, client: TestClient, headers: dict[str, dict[str, str]],
        readings: str) -> None:
    create_connection(ws, "out", readings, allow_output=True)
    ws.data.local_path("in").mkdir(parents=True)
    pd.DataFrame({"id": range(5), "a": 1.0, "b": 2.0}).to_csv(
        ws.data.local_path("in", "x.csv"), index=False)
    answer = client.post("/api/v1/endpoints/lin/invoke", headers=headers["operator"], json={
        "inputs": ["in/x.csv"], "output": "connection:out", "table": "scores"})
    assert answer.status_code == 202, answer.text
    run = _finished_run(ws, answer.json()["run_id"])
    assert run.state == "succeeded", run.reason
    assert run.output_url == "connection:out"
    engine = sa.create_engine(readings)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM scores")).scalar_one() == 5
    engine.dispose()


def test_sqlite_limits_in_the_python_function(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(30)])
    url = f"sqlite:///{path}"
    limits = {"read_only": True, "statement_timeout": 30, "max_rows": 10}
    with pytest.raises(InputError, match="more than 10 rows"):
        snapshot_query(url, "SELECT * FROM t", ws.system, 4, limits)
    with pytest.raises(InputError, match=r"readonly|read-only|read only"):
        snapshot_query(url, "DELETE FROM t RETURNING id", ws.system, 4, limits)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 30
    _, rows = snapshot_query(url, "SELECT * FROM t WHERE id < 10", ws.system, 4, limits)
    assert rows == 10
    slow = {"read_only": True, "statement_timeout": 0.2, "max_rows": 10}
    endless = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT x FROM c WHERE x < 0")
    with pytest.raises(InputError, match="interrupted"):
        snapshot_query(url, endless, ws.system, 4, slow)


def test_the_cli_manages_connections_without_showing_urls(ws: Workspace,
                                                          tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    url = "postgresql://reader:s3cretPassw0rd@db.example/sales"
    made = runner.invoke(app, ["connection", "create", "sales", url, "--max-rows", "50",
                               "--statement-timeout", "9"], env=env)
    assert made.exit_code == 0, made.output
    shown = runner.invoke(app, ["connection", "list", "--json"], env=env)
    assert shown.exit_code == 0 and "sales" in shown.output
    assert "s3cretPassw0rd" not in shown.output and "db.example" not in shown.output
    assert [c.max_rows for c in list_connections(ws)] == [50]
    bad = runner.invoke(app, ["connection", "create", "x", "mysql://u:p@h/d"], env=env)
    assert bad.exit_code == 2 and "not supported" in bad.output
    gone = runner.invoke(app, ["connection", "delete", "sales"], env=env)
    assert gone.exit_code == 0 and list_connections(ws) == []
    missing = runner.invoke(app, ["connection", "delete", "sales"], env=env)
    assert missing.exit_code == 2 and "no connection named" in missing.output


def _script_bundle() -> str:
    import base64
    import gzip
    import io
    import tarfile

    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        code = b"def init():\n    pass\n\ndef run(batch):\n    return batch\n"
        info = tarfile.TarInfo("code/score.py")
        info.size = len(code)
        tar.addfile(info, io.BytesIO(code))
    return base64.b64encode(out.getvalue()).decode()


def _source_db(ws: Workspace) -> Path:
    path = ws.settings.root.parent / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(30)])
    return path


def _submit_query(client: TestClient, admin: dict[str, str], query: str, output: str = "out/"
                  ):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/jobs", headers=admin, json={
        "spec": {"input_format": "sql", "options": {"query": query}},
        "scoring_script": "score.py", "bundle": _script_bundle(),
        "inputs": ["connection:src"], "output": output})


def test_submitted_script_jobs_name_connections_too(ws: Workspace, client: TestClient,
                                                    headers: dict[str, dict[str, str]]) -> None:
    state = f"sqlite:///{ws.settings.root / 'state.db'}"
    answer = client.post("/api/v1/jobs", headers=headers["admin"], json={
        "spec": {"input_format": "sql", "options": {"query": "SELECT * FROM api_tokens"}},
        "scoring_script": "score.py", "bundle": _script_bundle(),
        "inputs": [state], "output": "out/"})
    assert answer.status_code == 400, answer.text
    assert "connection:NAME" in answer.json()["detail"]
    path = _source_db(ws)
    create_connection(ws, "src", f"sqlite:///{path}", max_rows=10)  # the CLI may: SQLite
    capped = _submit_query(client, headers["admin"], "SELECT * FROM t")
    assert capped.status_code == 202, capped.text
    run = _finished_run(ws, capped.json()["run_id"])
    assert run.state == "failed" and "more than 10 rows" in (run.reason or "")
    assert str(path) not in (run.reason or "")
    shown = client.get(f"/api/v1/runs/{run.id}", headers=headers["viewer"])
    assert shown.status_code == 200 and str(path) not in shown.text


def test_a_submitted_jobs_query_runs_in_the_job_not_in_the_request(
        ws: Workspace, client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    """Issue 14: ``POST /api/v1/jobs`` over ``connection:NAME`` answers before the query runs;
    a run slot plans the job, and the query runs there read-only under the row cap (before
    the fix the request itself ran it: the answer carried the planned job)."""
    path = _source_db(ws)
    create_connection(ws, "src", f"sqlite:///{path}", max_rows=10)
    answer = _submit_query(client, headers["admin"], "SELECT * FROM t WHERE id < 5")
    assert answer.status_code == 202, answer.text
    assert answer.json()["job_id"] is None and answer.json()["job"] is None
    run = _finished_run(ws, answer.json()["run_id"])
    assert run.state == "succeeded", run.reason
    job = get_job(ws, run.job_id)
    assert job.items_succeeded == 5
    assert job.spec["options"]["sql_limits"]["read_only"] is True
    assert job.spec["options"]["sql_limits"]["max_rows"] == 10
    assert run.params["inputs"] == ["connection:src"] and str(path) not in str(run.params)
    assert (ws.data.local_path("out") / "predictions.csv").read_text().split() == [
        str(i) for i in range(5)]

    writes = _submit_query(client, headers["admin"], "DELETE FROM t RETURNING id", "out2/")
    assert writes.status_code == 202, writes.text
    refused = _finished_run(ws, writes.json()["run_id"])
    assert refused.state == "failed"
    assert re.search(r"readonly|read-only|read only", refused.reason or ""), refused.reason
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 30


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_query_cannot_lift_its_own_statement_timeout(ws: Workspace, readings: str) -> None:
    """``set_config('statement_timeout', '0', true)`` inside the query would free the fetches
    after the first; the whole query is still bounded by the connection's timeout."""
    lifts = ("SELECT r.id, r.a, r.b FROM (SELECT set_config('statement_timeout', '0', true)) "
             "AS s(x), readings AS r, LATERAL pg_sleep(CASE WHEN r.id > 0 THEN 10 ELSE 0 END) "
             "AS z WHERE r.id < 4")
    limits = {"read_only": True, "statement_timeout": 1.0, "max_rows": 100}
    with pytest.raises(InputError, match="statement timeout"):
        snapshot_query(readings, lifts, ws.system, 1, limits)


def test_the_query_pipeline_cannot_be_started_by_name(
        client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    """Only ``POST /api/v1/jobs`` records runs of ``batch-job-query`` (its spec is the one the
    service kept in the system store); the pipelines API neither lists nor starts it."""
    started = client.post("/api/v1/pipelines/batch-job-query/runs", headers=headers["admin"],
                          json={"submission": "0" * 64, "inputs": ["connection:src"],
                                "output": "out/"})
    assert started.status_code == 404, started.text
    assert "no pipeline named 'batch-job-query'" in started.text
    listed = client.get("/api/v1/pipelines", headers=headers["viewer"])
    assert listed.status_code == 200 and "batch-job-query" not in listed.text
