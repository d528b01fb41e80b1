"""Audit: secrets given through a secrets file never reach a file, a database row, a log, a
tag or a parameter.

Unique secret values go into the default secrets file (``$XDG_CONFIG_HOME/batchscore/
secrets.env``) and are really used: the state database and the MLflow registry are
PostgreSQL databases whose URLs carry passwords; the other keys (tracking password and
token, Azure and AWS keys) sit in the environment of every process. The real
train-evaluate-register pipeline runs on examples/diabetes, the version is released through
a staging deployment (its processes and log), and a batch job scores with it. Then every
file under the test's folder (workspace, stores, artifacts, job logs, deployment logs,
outputs), every row of both databases, and every registry tag and parameter are searched
for each secret."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from batchscore.jobs import job_logs, run_job
from batchscore.mlops import train_evaluate_register
from batchscore.mlops.release import release
from batchscore.registry.models import client, get_version, registry_uri
from batchscore.secrets import SECRETS_FILE_ENV
from batchscore.state import create_database
from batchscore.tabular import tabular_spec
from batchscore.workspace import init_workspace, open_workspace
from servers import postgres_url  # noqa: F401

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture
def environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def find_secrets(root: Path, secrets: dict[str, str]) -> dict[str, list[str]]:
    """Every file under ``root`` holding a secret's bytes: {file: [secret names]}."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits = [name for name, value in secrets.items() if value.encode() in data]
            if hits:
                found[str(path)] = hits
    return found


def database_rows(url: str) -> dict[str, str]:
    """Every row of every table of the PostgreSQL database at ``url``, as text by table."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {table: "\n".join(conn.execute(text(f'SELECT t::text FROM "{table}" t'))
                                      .scalars())
                    for table in inspect(conn).get_table_names()}
    finally:
        engine.dispose()


def test_the_scanner_finds_a_planted_secret(tmp_path):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "x.bin").write_bytes(b"\x00\x01" + secret.encode() + b"\xff")
    (tmp_path / "clean.txt").write_text("nothing")
    assert find_secrets(tmp_path, {"S": secret, "T": "absent-value"}) == {
        str(tmp_path / "deep" / "er" / "x.bin"): ["S"]}


def test_no_secret_is_written_anywhere(tmp_path, tmp_path_factory, postgres_url,  # noqa: F811
                                       environ):
    tag = uuid.uuid4().hex[:12]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for db in (f"state_{tag}", f"mlflow_{tag}"):
            conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    base = make_url(postgres_url)
    state_pw, mlflow_pw = f"pw-{uuid.uuid4().hex}", f"mlpw-{uuid.uuid4().hex}"
    state_url = base.set(password=state_pw, database=f"state_{tag}")
    mlflow_url = base.set(password=mlflow_pw, database=f"mlflow_{tag}")
    plain = {  # the URLs without their passwords, to read the databases afterwards
        "state": base.set(database=f"state_{tag}").render_as_string(hide_password=False),
        "mlflow": base.set(database=f"mlflow_{tag}").render_as_string(hide_password=False)}
    secrets = {
        "state database password": state_pw,
        "registry database password": mlflow_pw,
        "MLFLOW_TRACKING_PASSWORD": f"s3cr3t-{uuid.uuid4().hex}",
        "MLFLOW_TRACKING_TOKEN": f"tok-{uuid.uuid4().hex}",
        "AZURE_STORAGE_KEY": f"azkey-{uuid.uuid4().hex}",
        "AccountKey": f"ak-{uuid.uuid4().hex}",
        "AWS_SECRET_ACCESS_KEY": f"aws-{uuid.uuid4().hex}",
    }
    lines = [
        f"BATCHSCORE_DATABASE_URL={state_url.render_as_string(hide_password=False)}",
        f"MLFLOW_TRACKING_URI={mlflow_url.render_as_string(hide_password=False)}",
        "MLFLOW_TRACKING_USERNAME=postgres",
        f"MLFLOW_TRACKING_PASSWORD={secrets['MLFLOW_TRACKING_PASSWORD']}",
        f"MLFLOW_TRACKING_TOKEN={secrets['MLFLOW_TRACKING_TOKEN']}",
        f"AZURE_STORAGE_KEY={secrets['AZURE_STORAGE_KEY']}",
        'AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=https;AccountName=acct;'
        f'AccountKey={secrets["AccountKey"]};EndpointSuffix=core.windows.net"',
        f"AWS_SECRET_ACCESS_KEY={secrets['AWS_SECRET_ACCESS_KEY']}",
    ]
    for name in ("BATCHSCORE_DATABASE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AZURE_STORAGE_KEY",
                 "AZURE_STORAGE_CONNECTION_STRING", "AWS_SECRET_ACCESS_KEY", SECRETS_FILE_ENV):
        os.environ.pop(name, None)
    config = tmp_path_factory.mktemp("config")  # outside the folder searched below
    os.environ["XDG_CONFIG_HOME"] = str(config)

    # the state schema in PostgreSQL, a workspace whose settings name no database
    create_database(state_url.render_as_string(hide_password=False)).dispose()
    init_workspace(tmp_path / "ws").close()
    secrets_file = config / "batchscore" / "secrets.env"
    secrets_file.parent.mkdir(parents=True)
    secrets_file.write_text("\n".join(lines) + "\n")
    secrets_file.chmod(0o600)

    ws = open_workspace(tmp_path / "ws")
    try:
        assert ws.settings.database_url == state_url.render_as_string(hide_password=False)
        assert registry_uri(ws).startswith("postgresql+psycopg://postgres:mlpw-")
        outcome = train_evaluate_register(ws, PROJECT)
        assert outcome.promoted and outcome.version == 1
        released = release(ws, "diabetes")
        assert all(c.ok for c in released.staging_checks)
        # registry: every tag and parameter of every model, version and run
        c = client(ws)
        registry_text = []
        for model in c.search_registered_models():
            registry_text += [str(model.tags), str(model.aliases), model.description or ""]
            for mv in c.search_model_versions(f"name = '{model.name}'"):
                registry_text += [str(mv.tags), mv.source, mv.description or ""]
        for experiment in c.search_experiments():
            registry_text.append(experiment.artifact_location)
            for run in c.search_runs([experiment.experiment_id]):
                registry_text += [str(run.data.tags), str(run.data.params),
                                  run.info.artifact_uri]
        assert get_version(ws, "diabetes@production").version == 1

        frame = load_diabetes(as_frame=True, scaled=False).frame[FEATURES].astype("float64")
        source = tmp_path / "input.csv"
        frame[:40].to_csv(source, index=False)
        job = run_job(ws, tabular_spec("models:/diabetes@production", workers=1,
                                       mini_batch_size=20), [str(source)],
                      str(tmp_path / "out.csv"))
        assert (job.state, job.items_succeeded) == ("succeeded", 40)
        assert len(pd.read_csv(tmp_path / "out.csv")) == 40
        assert job_logs(ws, job.id).events  # the job's structured logs were written
        # the job's forked workers left this process's pooled registry connections working
        assert get_version(ws, "diabetes@production").version == 1
        assert [m.name for m in c.search_registered_models()] == ["diabetes"]
        for experiment in c.search_experiments():
            c.search_runs([experiment.experiment_id])
    finally:
        ws.close()

    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert "ws/deployments/diabetes.staging.log" in files  # the scan sees the deployment log
    assert f"ws/system/jobs/{job.id}/logs/events.jsonl" in files  # and the job's logs
    assert any(f.startswith("ws/system/mlflow/") and f.endswith("MLmodel") for f in files)
    found = find_secrets(tmp_path, secrets)
    assert found == {}
    rows = {name: database_rows(url) for name, url in plain.items()}
    assert job.id in rows["state"]["jobs"] and "diabetes" in rows["mlflow"]["model_versions"]
    leaks = {f"{db}.{table}": [n for n, v in secrets.items() if v in content]
             for db, tables in rows.items() for table, content in tables.items()}
    assert {where: names for where, names in leaks.items() if names} == {}
    registry = "\n".join(registry_text)
    assert "batchscore.data_hash" in registry
    assert [n for n, v in secrets.items() if v in registry] == []
