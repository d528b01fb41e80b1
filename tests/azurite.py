"""The Azure Blob emulator (Azurite, from npm) for tests: started by the test on 127.0.0.1 on
a free port with a temporary workspace folder, stopped after.

``azurite_blob()`` yields a connection string for the well-known development account
``devstoreaccount1``; the session fixture ``azurite`` wraps it. ``azurite-blob`` is looked
for in the repository's ``.node`` folder first (``make test`` installs the pinned version there
with npm when npm exists: ``make azurite``), then on PATH. A missing ``azurite-blob`` skips the
test, or fails it with ``BATCHSCORE_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import free_port, skip_missing

__all__ = ["ACCOUNT", "KEY", "azure_env", "azurite", "azurite_blob", "connection_string"]

ACCOUNT = "devstoreaccount1"
# The emulator's published development key (the same in every Azurite install).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
VERSION = "3.35.0"  # also in the Makefile (AZURITE_VERSION); tests/test_servers.py checks
LOCAL = Path(__file__).resolve().parents[1] / ".node" / "node_modules" / ".bin" / "azurite-blob"
ARGS = ["--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"]


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


def _binary() -> str:
    if os.access(LOCAL, os.X_OK):
        return str(LOCAL)
    found = shutil.which("azurite-blob")
    if found:
        return found
    if shutil.which("npm"):
        command = "make azurite"
    else:
        command = "apt-get install -y --no-install-recommends nodejs npm, then make azurite"
    skip_missing("Azurite", f"azurite-blob not found in {LOCAL.parents[2]} nor on PATH",
                 command)


@contextlib.contextmanager
def azurite_blob() -> Iterator[str]:
    binary = _binary()
    folder = Path(tempfile.mkdtemp(prefix="bs-azurite-"))
    log = open(folder / "azurite.log", "wb")  # noqa: SIM115 - closed below
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
         str(folder / "data"), *ARGS], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"azurite exited with {proc.returncode}: "
                                   f"{(folder / 'azurite.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("azurite did not start within 30 s")
            time.sleep(0.1)
        yield connection_string(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A connection string of a running Azurite blob service (one per test session: imported
    by tests/conftest.py alone, since a fixture imported into several modules is a separate
    fixture, and a separate Azurite, in each)."""
    with azurite_blob() as conn:
        yield conn


@pytest.fixture
def azure_env(azurite: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``$AZURE_STORAGE_CONNECTION_STRING`` set to Azurite's for this test. adlfs reads it
    when a filesystem is made and fsspec keeps one filesystem per set of arguments (none for
    ``az://``), so the instances made under another test's variable are dropped, before and
    after."""
    AzureBlobFileSystem = pytest.importorskip("adlfs").AzureBlobFileSystem

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    AzureBlobFileSystem.clear_instance_cache()
    yield azurite
    AzureBlobFileSystem.clear_instance_cache()
