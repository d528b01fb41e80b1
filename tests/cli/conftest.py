"""The CLI in-process: ``invoke`` runs ``batchscore ARGS`` against the ``ws`` workspace."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from cli_checks import Invoke
from typer.testing import CliRunner, Result

from batchscore.cli import app
from batchscore.workspace import Workspace
from servers import free_port


@pytest.fixture
def invoke(ws: Workspace) -> Invoke:
    runner = CliRunner()

    def call(*args: str, workspace: str | None = None) -> Result:
        env = {"BATCHSCORE_WORKSPACE": workspace or str(ws.settings.root)}
        return runner.invoke(app, list(args), env=env)

    return call


@pytest.fixture
def service(ws: Workspace) -> Iterator[str]:
    """`batchscore serve` on the ``ws`` workspace, one run slot; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchscore", "serve", "-w", str(ws.settings.root),
         "--port", str(port), "--run-slots", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(30)
