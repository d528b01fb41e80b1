"""Creating and opening workspaces, and refusing ones this version cannot use."""

from __future__ import annotations

import sqlite3

import pytest

from batchscore.errors import WorkspaceError
from batchscore.state.db import SCHEMA_HEAD
from batchscore.workspace import init_workspace, open_workspace


def test_init_creates_settings_database_and_stores(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    root = tmp_path / "ws"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("state.db-")) == [
        "batchscore.toml", "data", "state.db", "system"]
    assert ws.settings.root == root
    assert ws.data.url == f"file://{root}/data" and ws.system.url == f"file://{root}/system"
    with sqlite3.connect(root / "state.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"jobs", "minibatches", "attempts", "alembic_version"} <= tables
    ws.close()


def test_init_again_opens_the_same_workspace(tmp_path):
    first = init_workspace(tmp_path / "ws")
    first.close()
    cfg = (tmp_path / "ws" / "batchscore.toml").read_bytes()
    again = init_workspace(tmp_path / "ws", data_store="memory://ignored")
    assert again.settings == first.settings
    assert (tmp_path / "ws" / "batchscore.toml").read_bytes() == cfg
    again.close()
    with pytest.raises(WorkspaceError, match="a workspace already exists at "):
        init_workspace(tmp_path / "ws", exist_ok=False)


def test_init_with_other_stores_and_database(tmp_path):
    db = tmp_path / "elsewhere" / "state.db"
    ws = init_workspace(tmp_path / "ws", database_url=f"sqlite:///{db}",
                        data_store="memory://bs-test-data", system_store=str(tmp_path / "sys"))
    assert db.is_file() and (tmp_path / "sys").is_dir()
    reopened = open_workspace(tmp_path / "ws")
    assert reopened.settings.database_url == f"sqlite:///{db}"
    assert reopened.settings.data_store == "memory://bs-test-data"
    assert reopened.settings.system_store == f"file://{tmp_path / 'sys'}"
    assert not reopened.data.is_local
    reopened.engine  # noqa: B018 - opens the database
    for w in (ws, reopened):
        w.close()


def test_open_missing_workspace(tmp_path):
    with pytest.raises(WorkspaceError, match=r"create one with `batchscore init`$"):
        open_workspace(tmp_path / "nope")


def test_missing_state_database(tmp_path):
    init_workspace(tmp_path / "ws").close()
    (tmp_path / "ws" / "state.db").unlink()
    ws = open_workspace(tmp_path / "ws")
    with pytest.raises(WorkspaceError) as exc:
        ws.engine  # noqa: B018
    assert str(exc.value) == (f"state database {tmp_path}/ws/state.db does not exist; "
                              "create the workspace with `batchscore init`")


def test_a_database_that_is_not_batchscore(tmp_path):
    init_workspace(tmp_path / "ws").close()
    db = tmp_path / "ws" / "state.db"
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.unlink()
    sqlite3.connect(db).close()  # an empty SQLite file
    with pytest.raises(WorkspaceError, match=r"is not a batchscore state database \(no schema\)"):
        open_workspace(tmp_path / "ws").engine  # noqa: B018


def test_newer_database_schema_is_refused_and_left_alone(tmp_path):
    init_workspace(tmp_path / "ws").close()
    db = tmp_path / "ws" / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    conn.close()
    with pytest.raises(WorkspaceError) as exc:
        open_workspace(tmp_path / "ws").engine  # noqa: B018
    assert str(exc.value) == (
        f"state database sqlite:///{db} has schema revision 'ffff9999', newer than this "
        f"batchscore understands (up to {SCHEMA_HEAD!r}); upgrade batchscore")
    with pytest.raises(WorkspaceError, match="newer than this batchscore"):
        init_workspace(tmp_path / "ws")  # init does not "upgrade" it either
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("ffff9999",)]
    conn.close()
