"""The test servers start, answer real queries, and are gone after their context exits."""

from __future__ import annotations

import socket

import pytest

from servers import free_port, postgres_server, redis_ping, redis_server, require_binary


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


def test_missing_binary_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHSCORE_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install the Debian package 'no-such-pkg'"):
        require_binary(["no-such-binary-xyz", "/nonexistent/*/bin/x"], hint="no-such-pkg")


def test_missing_binary_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHSCORE_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="BATCHSCORE_REQUIRE_SERVICES=1"):
        require_binary("no-such-binary-xyz", hint="no-such-pkg")
