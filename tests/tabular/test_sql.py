"""SQL inputs and outputs: snapshots, one-transaction commits, no duplicates on re-commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from tabular_helpers import expected

from batchscore.errors import InputError
from batchscore.jobs import list_jobs, resume_job, run_job, spec_from_mapping, submit_job
from batchscore.tabular import tabular_spec
from batchscore.tabular.writers import OutputWriteError
from batchscore.workspace import Workspace

QUERY = "SELECT TS, Device, Sensor, Value, Temp FROM readings ORDER BY TS"


def sqlite_input(path: Path, frame: pd.DataFrame) -> str:
    with sqlite3.connect(path) as conn:
        frame.to_sql("readings", conn, index=False)
    return f"sqlite:///{path}"


def table_rows(url: str, table: str = "scores") -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(f"SELECT * FROM {table}", conn)
    finally:
        engine.dispose()


def test_sqlite_query_in_sqlite_table_out(ws, tmp_path, data, model_dir):
    src = sqlite_input(tmp_path / "in.db", data)
    out = f"sqlite:///{tmp_path / 'out.db'}"
    spec = tabular_spec(str(model_dir), query=QUERY, table="scores", keys=["TS", "Device"],
                        mini_batch_size=25)
    job = run_job(ws, spec, [src], out)
    assert (job.state, job.minibatches_total, job.items_succeeded) == ("succeeded", 3, 60)
    got = table_rows(out)
    assert list(got.columns) == ["TS", "Device", "prediction", "batchscore_job_id"]
    assert got["TS"].tolist() == data["TS"].tolist()
    np.testing.assert_allclose(got["prediction"], expected(data))
    assert set(got["batchscore_job_id"]) == {job.id}
    snapshots = ws.system.list("snapshots")
    assert len(snapshots) == 1 and snapshots[0].endswith("/result.parquet")


def test_a_second_job_appends_and_the_first_keeps_its_rows(ws, tmp_path, data, model_dir):
    src = sqlite_input(tmp_path / "in.db", data)
    out = f"sqlite:///{tmp_path / 'out.db'}"
    first = run_job(ws, tabular_spec(str(model_dir), query=QUERY, table="scores",
                                     keys=["TS"]), [src], out)
    second = run_job(ws, tabular_spec(str(model_dir), query=QUERY + " LIMIT 10",
                                      table="scores", keys=["TS"]), [src], out)
    counts = table_rows(out).groupby("batchscore_job_id").size().to_dict()
    assert counts == {first.id: 60, second.id: 10}


def test_the_snapshot_is_what_the_job_scores(ws, tmp_path, data, model_dir):
    path = tmp_path / "in.db"
    src = sqlite_input(path, data)
    spec = tabular_spec(str(model_dir), query=QUERY, keys=["TS"], mini_batch_size=20)
    job, _ = submit_job(ws, spec, [src], str(tmp_path / "out.parquet"))
    with sqlite3.connect(path) as conn:  # the table changes after the job was planned
        conn.execute("DELETE FROM readings WHERE Device = 1")
        conn.execute("UPDATE readings SET Value = 0")
    finished = resume_job(ws, job.id)
    assert finished.state == "succeeded"
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["TS"].tolist() == data["TS"].tolist()
    np.testing.assert_allclose(got["prediction"], expected(data))


def test_failing_query_is_refused_before_recording(ws, tmp_path, data, model_dir):
    src = sqlite_input(tmp_path / "in.db", data)
    spec = tabular_spec(str(model_dir), query="SELECT Valu FROM readings")
    with pytest.raises(InputError) as exc:
        submit_job(ws, spec, [src], str(tmp_path / "o"))
    assert str(exc.value) == f"SQL query on {src} failed: no such column: Valu"
    assert list_jobs(ws) == []


def test_query_missing_a_feature_column_is_refused(ws, tmp_path, data, model_dir):
    src = sqlite_input(tmp_path / "in.db", data)
    spec = tabular_spec(str(model_dir), query="SELECT TS, Value FROM readings")
    with pytest.raises(InputError, match=r"column\(s\) \['Temp'\] not found"):
        submit_job(ws, spec, [src], str(tmp_path / "o"))
    assert list_jobs(ws) == []


def test_table_without_the_job_column_is_refused(ws, tmp_path, data, model_dir):
    src = sqlite_input(tmp_path / "in.db", data)
    with sqlite3.connect(tmp_path / "out.db") as conn:
        conn.execute("CREATE TABLE scores (TS TEXT, prediction REAL)")
    out = f"sqlite:///{tmp_path / 'out.db'}"
    spec = tabular_spec(str(model_dir), query=QUERY, table="scores", keys=["TS"])
    with pytest.raises(OutputWriteError, match="has no batchscore_job_id column"):
        submit_job(ws, spec, [src], out)
    assert list_jobs(ws) == []


def test_table_missing_an_output_column_fails_the_commit_and_stays_resumable(
        ws, tmp_path, data, model_dir):
    src = sqlite_input(tmp_path / "in.db", data)
    path = tmp_path / "out.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE scores (TS TEXT, batchscore_job_id TEXT)")
    out = f"sqlite:///{path}"
    spec = tabular_spec(str(model_dir), query=QUERY, table="scores", keys=["TS"])
    with pytest.raises(OutputWriteError, match=r"has no column\(s\) prediction"):
        run_job(ws, spec, [src], out)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE scores ADD COLUMN prediction REAL")
    job = resume_job(ws, list_jobs(ws)[0].id)
    assert job.state == "succeeded" and len(table_rows(out)) == 60


def cli(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "batchscore", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("point", ["tabular-sql-inserted", "output-committed"])
def test_crash_in_or_after_the_commit_then_resume_writes_each_row_once(
        ws, tmp_path, data, model_dir, point):
    src = sqlite_input(tmp_path / "in.db", data)
    out = f"sqlite:///{tmp_path / 'out.db'}"
    spec_file = tmp_path / "job.yml"
    spec_file.write_text(yaml.safe_dump({
        "kind": "tabular", "mini_batch_size": 20, "max_concurrency_per_instance": 1,
        "options": {"model": str(model_dir), "query": QUERY, "table": "scores",
                    "keys": ["TS"]}}))
    args = ["job", "run", str(spec_file), "-i", src, "-o", out, "--no-progress"]
    crashed = cli(ws, *args, env={"BATCHSCORE_CRASH_AT": point})
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err
    engine = sa.create_engine(out)
    inserted = sa.inspect(engine).has_table("scores")
    engine.dispose()
    if point == "tabular-sql-inserted":  # killed inside the transaction: nothing there
        assert not inserted
    else:  # committed, but the job is not marked finished: committing again must not add
        assert len(table_rows(out)) == 60
    again = cli(ws, *args)  # the same command resumes the job
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    got = table_rows(out)
    assert len(got) == 60 and got["TS"].is_unique
    jobs = list_jobs(ws)
    assert len(jobs) == 1 and jobs[0].state == "succeeded"
    assert set(got["batchscore_job_id"]) == {jobs[0].id}


@pytest.mark.postgres
def test_postgresql_table_out(ws, tmp_path, data, model_dir, postgres_url):
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")  # mapped to psycopg
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    spec = tabular_spec(str(model_dir), table="public.scores", keys=["TS", "Device"],
                        mini_batch_size=25)
    job = run_job(ws, spec, [str(src)], plain)
    assert job.state == "succeeded"
    again = run_job(ws, tabular_spec(str(model_dir), table="public.scores", keys=["TS",
                                                                                 "Device"],
                                     mini_batch_size=25), [str(src)], plain, overwrite=True)
    got = table_rows(postgres_url)
    assert got.groupby("batchscore_job_id").size().to_dict() == {job.id: 60, again.id: 60}
    mine = got[got.batchscore_job_id == job.id].sort_values("TS")
    np.testing.assert_allclose(mine["prediction"], expected(data))
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE public.scores"))
    engine.dispose()


def test_script_jobs_read_sql_too(ws, script, tmp_path, data):
    src = sqlite_input(tmp_path / "in.db", data)
    show = script("""
        def run(mini_batch):
            return [f"{ts} {v}" for ts, v in zip(mini_batch["TS"], mini_batch["Value"])]
    """)
    spec = spec_from_mapping({"scoring_script": str(show), "input_format": "sql",
                              "mini_batch_size": 25, "options": {"query": QUERY}})
    job = run_job(ws, spec, [src], str(tmp_path / "out"))
    assert (job.state, job.minibatches_total) == ("succeeded", 3)
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert lines == [f"{ts} {v}" for ts, v in zip(data["TS"], data["Value"], strict=True)]
