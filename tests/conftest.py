"""Shared fixtures: a fresh workspace, scoring scripts written on the fly, input files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from batchscore.workspace import Workspace, init_workspace
from servers import free_port

EXECUTORS = ["local", pytest.param("ray", marks=pytest.mark.ray)]


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C behaves as in a terminal, however the run was started: a command started in the
    background by a shell without job control (``make test &``, a CI runner's script)
    inherits SIGINT ignored, and so would every process the tests start, so the tests of
    Ctrl-C (a SIGINT sent to a job) would wait for an exit that never comes. A handler, unlike
    an ignored signal, is not inherited: the tests' processes start with Python's own."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_GUARDED = ("BATCHSCORE_WORKSPACE", "BATCHSCORE_DATABASE_URL", "BATCHSCORE_DATA_STORE",
            "BATCHSCORE_SYSTEM_STORE", "BATCHSCORE_CRASH_AT", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without the variables that choose a workspace, database or registry,
    and whatever a test leaves in them is undone (mlflow.set_tracking_uri, for one, exports
    $MLFLOW_TRACKING_URI, which would send later tests' models to that test's registry)."""
    before = {var: os.environ.get(var) for var in _GUARDED}
    for var in _GUARDED:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BATCHSCORE_SECRETS_FILE", "")  # never a developer's own secrets file
    yield
    for var, value in before.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


@pytest.fixture
def machine_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh temporary folder for this test and the processes it starts (``$TMPDIR``):
    what jobs leave there is seen (``helpers.left_in_tmp``)."""
    folder = tmp_path / "machine-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = init_workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest, ws: Workspace,
             monkeypatch: pytest.MonkeyPatch) -> str:
    """Every semantic test runs against each executor (one suite, not a copy)."""
    object.__setattr__(ws.settings, "executor", request.param)
    if request.param == "ray":  # the session's Ray cluster (skipped when Ray is missing)
        cluster = request.getfixturevalue("ray_cluster")
        object.__setattr__(ws.settings, "ray_address", cluster.address)
        monkeypatch.setenv("BATCHSCORE_RAY_ENV", "MARKS")  # as forked local workers see it
        monkeypatch.setenv("BATCHSCORE_RAY_PLACEMENT_TIMEOUT", "5")
    return str(request.param)


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str], Path]:
    """Write a scoring script from source text; returns its path."""
    counter = iter(range(1000))

    def write(source: str) -> Path:
        path = tmp_path / f"score_{next(counter)}.py"
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def files(tmp_path: Path) -> Callable[[int], Path]:
    """Make ``n`` small text input files named f000.txt... holding their index."""

    def make(n: int, folder: str = "inputs") -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / f"f{i:03d}.txt").write_text(f"{i}\n")
        return root

    return make


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the scripts use to leave marks (set as $MARKS in the workers)."""
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("MARKS", str(folder))
    return folder


@pytest.fixture
def service(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`batchscore serve` on the ``ws`` workspace, one run slot; yields its URL. The admin
    token it writes into the workspace is in $BATCHSCORE_TOKEN meanwhile (the CLI run by the
    tests, with another workspace or none, needs it as a user on another machine would)."""
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
    monkeypatch.setenv("BATCHSCORE_TOKEN",
                       (ws.settings.root / "service" / "admin.token").read_text().strip())
    yield url
    proc.terminate()
    proc.wait(30)


# fixtures, and the hook that ends the run with one line per missing test server
from azurite import azure_env, azurite  # noqa: E402, F401
from ray_cluster import ray_cluster, ray_gpu_node, ray_worker_node  # noqa: E402, F401
from servers import (  # noqa: E402, F401
    pg_database,
    postgres_url,
    pytest_terminal_summary,
    redis_url,
)

