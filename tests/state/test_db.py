"""The state database: created, upgraded, refused when too new; SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from batchscore.errors import WorkspaceError
from batchscore.jobs import run_job, spec_from_mapping, submit_job
from batchscore.state import SCHEMA_HEAD, connect, create_database
from batchscore.state import db as state_db
from batchscore.state import jobs as db
from batchscore.workspace import init_workspace


def test_create_then_connect_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    create_database(url).dispose()
    engine = connect(url)
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == \
            SCHEMA_HEAD
    engine.dispose()


def test_the_schema_head_is_the_newest_migration() -> None:
    """SCHEMA_HEAD is written in the code (so that opening a database needs no Alembic): it
    must name Alembic's head of the migrations folder; a new migration updates it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(state_db.__file__).with_name("migrations")))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic (with Mako and the dialects it loads) costs every command a fifth of a second:
    a current database opens without it; an older one is upgraded with it."""
    init_workspace(tmp_path / "ws").close()
    probe = ("import sys; from batchscore.workspace import open_workspace; "
             f"open_workspace({str(tmp_path / 'ws')!r}).close(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _database_then(tmp_path: Path, statement: str) -> str:
    """A current state database changed by ``statement`` (SQL) behind batchscore's back; its
    URL."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    create_database(url).dispose()
    raw = create_engine(url)
    with raw.begin() as conn:
        conn.execute(text(statement))
    raw.dispose()
    return url


def test_a_version_table_with_several_revisions_is_refused(tmp_path: Path) -> None:
    url = _database_then(tmp_path, "insert into alembic_version (version_num) values ('0007')")
    with pytest.raises(WorkspaceError, match=r"several schema revisions \['0007', '0008'\]|"
                                             r"several schema revisions \['0008', '0007'\]"):
        connect(url)


def test_missing_database_says_to_init(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist; create the workspace"):
        connect(f"sqlite:///{tmp_path / 'nope.db'}")


def test_database_from_newer_version_is_refused(tmp_path: Path) -> None:
    url = _database_then(tmp_path, "update alembic_version set version_num = 'ffff9999'")
    with pytest.raises(WorkspaceError, match="'ffff9999', newer than this batchscore"):
        connect(url)


def test_not_a_batchscore_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    raw = create_engine(url)
    with raw.begin() as conn:
        conn.execute(text("create table t (x int)"))
    raw.dispose()
    with pytest.raises(WorkspaceError, match="not a batchscore state database"):
        connect(url)




@pytest.mark.postgres
def test_job_runs_with_state_in_postgresql(pg_database: str, tmp_path: Path, files) -> None:
    ws = init_workspace(tmp_path / "ws", database_url=pg_database)
    script = tmp_path / "score.py"
    script.write_text("def run(mb):\n    return [p[-8:] for p in mb]\n")
    spec = spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 2,
                              "max_concurrency_per_instance": 2})
    job = run_job(ws, spec, [str(files(5))], str(tmp_path / "out"))
    assert job.state == "succeeded" and job.items_succeeded == 5
    assert (tmp_path / "out/predictions.csv").read_text().split() == [
        f"f{i:03d}.txt" for i in range(5)]
    assert ws.settings.database_url == pg_database
    ws.close()


@pytest.mark.postgres
def test_one_active_job_per_key_and_one_runner_per_job(pg_database: str, tmp_path: Path,
                                                       files) -> None:
    ws = init_workspace(tmp_path / "ws", database_url=pg_database)
    script = tmp_path / "score.py"
    script.write_text("def run(mb):\n    return mb\n")
    spec = spec_from_mapping({"scoring_script": str(script)})
    first, created = submit_job(ws, spec, [str(files(3))], str(tmp_path / "out"))
    again, created_again = submit_job(ws, spec, [str(files(3))], str(tmp_path / "out"))
    assert created and not created_again and again.id == first.id
    assert db.claim_job(ws.engine, first.id, "host-a:1")
    assert not db.claim_job(ws.engine, first.id, "host-b:2")  # a live lease is respected
    ws.close()


def test_upgrade_moves_a_jobs_inputs_out_of_its_row(tmp_path: Path) -> None:
    """A database of revision 0005 kept the inputs in the jobs row: 0008 moves them to
    job_inputs, in order, and the job reads the same."""
    from alembic import command

    from batchscore.state.db import _alembic_config, _engine

    url = f"sqlite:///{tmp_path / 'state.db'}"
    old = _engine(url)
    command.upgrade(_alembic_config(old), "0005")
    urls = [f"file:///data/f{i}.txt" for i in range(7)]
    with old.begin() as conn:
        conn.execute(text(
            "insert into jobs (id, key, active_key, kind, name, state, spec, inputs, "
            "output_url, overwrite, created_at, cancel_requested, minibatches_total, "
            "items_total, items_succeeded, items_failed) values ('job-old', 'k', 'k', "
            "'script', 'n', 'queued', '{}', :inputs, 'file:///out', 0, 1.0, 0, 0, 0, 0, 0)"),
            {"inputs": json.dumps(urls)})
    old.dispose()
    engine = connect(url)
    with engine.connect() as conn:
        assert json.loads(conn.execute(text("select inputs from jobs")).scalar()) == []
    job = db.get_job(engine, "job-old")
    assert job is not None and job.inputs == urls
    engine.dispose()


def test_engines_are_tracked_as_they_connect_and_forked_workers_renew_their_pools(
        tmp_path: Path) -> None:
    """A forked worker must not use its parent's pooled connections: the engines that
    connected are known without searching every object, and the worker gives each a new
    pool (the parent's connections are left alone, not closed)."""
    from batchscore.jobs.worker import _forget_inherited_connections
    from batchscore.state.db import connected_engines

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert engine not in connected_engines()
    with engine.connect() as conn:
        conn.execute(text("select 1"))
    assert engine in connected_engines()
    pool = engine.pool
    _forget_inherited_connections()
    assert engine.pool is not pool
    engine.dispose()
