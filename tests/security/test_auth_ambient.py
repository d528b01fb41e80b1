"""No ambient authority (issue 14, High 3): a caller on the loopback interface needs a token
like any other (a DNS-rebound browser page has none), requests without a token are answered
only for the service's own host names, and the local admin's token is in a private file of
the workspace that the CLI on the same machine reads."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace
from service.svc_helpers import TestClient

LOOPBACK = ("127.0.0.1", 50000)
EVIL = {"Host": "rebind.evil.example"}


@pytest.fixture
def local(ws: Workspace) -> Iterator[Any]:
    """A client on the loopback interface, as a browser on the service's machine is."""
    def make(**config: Any) -> TestClient:
        client = TestClient(create_app(ws, ServiceConfig(background=False, **config)),
                            base_url="http://127.0.0.1:8000", client=LOOPBACK)
        clients.append(client.__enter__())
        return client

    clients: list[TestClient] = []
    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_a_rebound_page_on_the_same_machine_is_not_admin(local):
    client = local()
    made = client.post("/api/v1/tokens", json={"name": "evil", "role": "admin"}, headers=EVIL)
    assert made.status_code == 421, made.text
    assert "rebind.evil.example" in made.json()["detail"]
    junk = {**EVIL, "Authorization": "Bearer bs_guess"}
    assert client.get("/healthz", headers=junk).status_code == 421
    assert client.get("/api/v1/tokens", headers=EVIL).status_code == 421


def test_loopback_without_a_token_is_401(local):
    client = local()
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        r = client.get("/api/v1/tokens", headers={"Host": host})
        assert r.status_code == 401, (host, r.text)
    assert client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}).status_code == 401


def test_with_auth_off_only_our_host_names_are_answered(local):
    client = local(auth="off", allowed_hosts=("scoring.internal",))
    assert client.get("/api/v1/jobs", headers=EVIL).status_code == 421
    # a header the page adds does not make it ours
    junk = {**EVIL, "Authorization": "Bearer bs_junk"}
    assert client.post("/api/v1/tokens", json={"name": "e", "role": "admin"}, headers=junk
                       ).status_code == 421
    assert client.get("/healthz", headers=EVIL).status_code == 421
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.get("/api/v1/jobs", headers={"Host": "scoring.internal:8000"}).status_code == 200


def test_a_token_is_authority_whatever_the_host(ws, local):
    client = local()
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'a', 'admin')[1]}"}
    assert client.get("/api/v1/tokens", headers={**admin, "Host": "scoring.lan"}
                      ).status_code == 200


def test_the_local_admin_token_file_is_private_and_fresh_each_start(ws, local):
    local()
    path = ws.settings.root / "service" / "admin.token"
    first = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    client = local()  # a restart makes a new one, the old one no longer works
    second = path.read_text().strip()
    assert second != first
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {first}"}
                      ).status_code == 401
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {second}"}
                      ).status_code == 200


def test_auth_always_writes_no_token_file(ws, local):
    local(auth="always")
    assert not (ws.settings.root / "service" / "admin.token").exists()


def test_the_cli_sends_the_local_token_to_loopback_servers_only(ws, local, monkeypatch):
    from batchscore.client import local_token

    local()
    monkeypatch.setenv("BATCHSCORE_WORKSPACE", str(ws.settings.root))
    token = (ws.settings.root / "service" / "admin.token").read_text().strip()
    assert local_token("http://127.0.0.1:8000") == token
    assert local_token("http://localhost:8000/") == token
    assert local_token("http://[::1]:8000") == token
    assert local_token("http://scoring.example:8000") is None
    assert local_token("http://10.0.0.5:8000") is None


def test_serving_without_auth_on_the_network_needs_a_flag(ws):
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    result = subprocess.run([sys.executable, "-m", "batchscore", "serve", "--host", "0.0.0.0",
                             "--auth", "off", "--port", "1"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--insecure-no-auth-on-network" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_on_the_same_machine_uses_the_token_file(ws, service, monkeypatch):
    monkeypatch.delenv("BATCHSCORE_TOKEN")  # the fixture's; here the CLI finds it itself
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    listed = subprocess.run([sys.executable, "-m", "batchscore", "job", "list", "--server",
                             service, "--json"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    env["BATCHSCORE_WORKSPACE"] = str(ws.settings.root.parent / "elsewhere")  # no token file
    refused = subprocess.run([sys.executable, "-m", "batchscore", "job", "list", "--server",
                              service], capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "the service answered 401" in refused.stderr
