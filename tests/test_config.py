"""Workspace settings: defaults, the TOML file, environment overrides and clear refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w

from batchscore.config import (
    CONFIG_FILE,
    WORKSPACE_FORMAT,
    Settings,
    find_workspace,
    load_settings,
    write_settings,
)
from batchscore.errors import WorkspaceError


def make(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(text)
    return root


def test_find_workspace_argument_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_workspace() == tmp_path / ".batchscore"
    monkeypatch.setenv("BATCHSCORE_WORKSPACE", "from-env")
    assert find_workspace() == tmp_path / "from-env"
    assert find_workspace("given") == tmp_path / "given"


def test_empty_file_means_every_default(tmp_path):
    root = make(tmp_path / "ws", "")
    assert load_settings(root) == Settings(
        root=root, data_store=f"file://{root}/data", system_store=f"file://{root}/system",
        database_url=f"sqlite:///{root}/state.db", executor="local")


def test_relative_paths_are_relative_to_the_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = make(tmp_path / "ws", """
[stores]
data = "../shared-data"
system = "s3://bucket/system"
[database]
url = "sqlite:///db/state.db"
[executor]
kind = "ray"
max_workers = 4
ray_address = "ray://head:10001"
""")
    s = load_settings("ws")
    assert s.root == root
    assert s.data_store == f"file://{tmp_path}/shared-data"
    assert s.system_store == "s3://bucket/system"
    assert s.database_url == f"sqlite:///{root}/db/state.db"
    assert (s.executor, s.max_workers, s.ray_address) == ("ray", 4, "ray://head:10001")


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    root = make(tmp_path / "ws", '[database]\nurl = "sqlite:////file.db"\n')
    monkeypatch.setenv("BATCHSCORE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("BATCHSCORE_DATA_STORE", "az://container/data")
    monkeypatch.setenv("BATCHSCORE_SYSTEM_STORE", "memory://system")
    s = load_settings(root)
    assert (s.database_url, s.data_store, s.system_store) == (
        "postgresql+psycopg://u@h/db", "az://container/data", "memory://system")


def test_write_then_load_round_trips(tmp_path):
    root = tmp_path / "ws"
    settings = Settings(root=root, data_store="memory://d", system_store=f"file://{root}/sys",
                        database_url="sqlite:///:memory:", executor="ray", max_workers=3,
                        ray_address="auto", redis_url="redis://127.0.0.1:6380/1",
                        env_manager="virtualenv")
    path = write_settings(settings)
    assert path == root / CONFIG_FILE
    assert load_settings(root) == settings
    assert f"format = {WORKSPACE_FORMAT}" in path.read_text()
    assert "[streams]" in path.read_text()
    assert 'env_manager = "virtualenv"' in path.read_text()
    write_settings(replace(settings, max_workers=None, ray_address=None, redis_url=None,
                           env_manager="local"))
    assert "max_workers" not in path.read_text() and "ray_address" not in path.read_text()
    assert "env_manager" not in path.read_text()  # the default is not written
    assert "[streams]" not in path.read_text()


def test_streams_section_knows_only_redis_url(tmp_path):
    root = make(tmp_path / "ws", '[streams]\nredis = "redis://x"\n')
    with pytest.raises(WorkspaceError, match=r"unknown key streams\.redis .*redis_url"):
        load_settings(root)


def test_missing_workspace_says_to_run_init(tmp_path):
    with pytest.raises(WorkspaceError) as exc:
        load_settings(tmp_path / "nope")
    assert str(exc.value) == (f"no batchscore workspace at {tmp_path / 'nope'} (missing "
                              f"{CONFIG_FILE}); create one with `batchscore init`")


@pytest.mark.parametrize(("text", "message"), [
    ("[workspace]\nformat = 99\n",
     "has workspace format 99, newer than this batchscore understands (up to 1); "
     "upgrade batchscore"),
    ('[workspace]\nformat = "one"\n', ": workspace.format must be a whole number from 1, "
     "not 'one'"),
    ("[workspace]\nformat = 0\n", ": workspace.format must be a whole number from 1, not 0"),
    ("[stores]\ndata = \n", "is not valid TOML: "),
    (b"\xff\xfe[stores]\n", "is not valid TOML: "),
    ("[store]\ndata = 'x'\n", "unknown section [store] (did you mean 'stores'?)"),
    ("[stores]\nsytem = 'x'\n", "unknown key stores.sytem (did you mean 'system'?)"),
    ("[executor]\nmax_worker = 2\n", "unknown key executor.max_worker (did you mean "
     "'max_workers'?)"),
    ("stores = 3\n", "[stores] must be a table"),
    ('[executor]\nenv_manager = "conda"\n', "executor.env_manager must be local or "
     "virtualenv, not 'conda'"),
])
def test_bad_settings_file(tmp_path, text, message):
    root = tmp_path / "ws"
    root.mkdir()
    cfg = root / CONFIG_FILE
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    else:
        cfg.write_text(text)
    with pytest.raises(WorkspaceError) as exc:
        load_settings(root)
    assert str(exc.value).startswith(f"{cfg}")
    assert message in str(exc.value)


def test_settings_to_toml_is_valid_toml():
    s = Settings(root=Path("/w"), data_store="file:///w/data", system_store="file:///w/sys",
                 database_url="sqlite:////w/state.db")
    assert tomli_w.dumps(s.to_toml()).startswith("[workspace]\nformat = 1\n")
