"""TLS on every listener batchscore starts (issue 19): the control plane, `model serve`, a
deployment's supervisor and children; the CLI verifies the certificate (``--ca-file``,
``$BATCHSCORE_CA_FILE``); a bad certificate or key is one clear message at start, exit 2.

A throw-away CA and certificates come from ``trustme``; nothing here trusts the system store."""

from __future__ import annotations

import datetime
import ssl
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from batchscore.cli import app as cli
from batchscore.client import Client
from batchscore.errors import UsageError
from batchscore.tlsconfig import clear_text_warning, client_verify, server_tls, set_ca_file
from helpers import left_in_tmp
from servers import free_port

trustme = pytest.importorskip("trustme")


class Pki:
    """A CA, a certificate for 127.0.0.1/localhost signed by it, and files for both."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.folder = folder
        self.ca_file = str(folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.cert, self.key = self.leaf("good", "127.0.0.1", "localhost")

    def leaf(self, stem: str, *names: str, **dates: Any) -> tuple[str, str]:
        issued = self.ca.issue_cert(*names, **dates)
        cert, key = self.folder / f"{stem}.crt", self.folder / f"{stem}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return str(cert), str(key)


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    yield Pki(tmp_path)
    set_ca_file(None)


def _wait_https(url: str, proc: subprocess.Popen[bytes], verify: Any) -> None:
    """Wait until ``url`` answers over TLS, or the process exits (the test then fails)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url, verify=verify, timeout=2)
            return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.2)


def _serve(ws_root: Path, pki: Pki, *extra: str, host: str = "127.0.0.1"
           ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "batchscore", "serve", "-w", str(ws_root),
                             "--host", host, "--port", str(port), "--run-slots", "1", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def https_service(ws, pki: Pki) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """`batchscore serve` over TLS; yields its https URL and the admin token."""
    for address, proc in _serve(ws.settings.root, pki, "--ssl-certfile", pki.cert,
                                "--ssl-keyfile", pki.key):
        url = f"https://{address}"
        _wait_https(f"{url}/healthz", proc, ssl.create_default_context(cafile=pki.ca_file))
        token = (ws.settings.root / "service" / "admin.token").read_text().strip()
        yield url, token


def test_a_client_with_the_ca_calls_the_service(https_service, pki):  # type: ignore[no-untyped-def]
    url, token = https_service
    set_ca_file(pki.ca_file)
    with Client(url, token) as client:
        assert client.call("GET", "/jobs") == []  # a fresh workspace: no job
    assert httpx.get(f"{url}/healthz", verify=client_verify()).json()["status"] == "ok"


def test_the_cli_verifies_with_ca_file_and_the_variable(https_service, pki, monkeypatch):  # type: ignore[no-untyped-def]
    url, token = https_service
    runner = CliRunner()
    refused = runner.invoke(cli, ["job", "list", "--server", url, "--token", token])
    assert refused.exit_code == 2
    assert "CERTIFICATE_VERIFY_FAILED" in refused.output or "certificate" in refused.output
    by_option = runner.invoke(cli, ["--ca-file", pki.ca_file, "job", "list",
                                    "--server", url, "--token", token])
    assert by_option.exit_code == 0, by_option.output
    set_ca_file(None)
    monkeypatch.setenv("BATCHSCORE_CA_FILE", pki.ca_file)
    by_variable = runner.invoke(cli, ["job", "list", "--server", url, "--token", token])
    assert by_variable.exit_code == 0, by_variable.output


def test_a_client_without_the_ca_is_refused(https_service):  # type: ignore[no-untyped-def]
    url, token = https_service
    with pytest.raises(UsageError, match="CERTIFICATE_VERIFY_FAILED"):
        Client(url, token, keepalive=False).call("GET", "/jobs")
    other = trustme.CA()  # another CA: not the one that signed the certificate
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthz", verify=_context_of(other))


def _context_of(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_a_wrong_hostname_is_refused(ws, pki, tmp_path):  # type: ignore[no-untyped-def]
    cert, key = pki.leaf("other", "scoring.example")  # right CA, another name
    for address, proc in _serve(ws.settings.root, pki, "--ssl-certfile", cert,
                                "--ssl-keyfile", key):
        url = f"https://{address}"
        _wait_https(f"{url}/healthz", proc, _pinned(cert))
        set_ca_file(pki.ca_file)
        with pytest.raises(UsageError, match=r"CERTIFICATE_VERIFY_FAILED.*(IP address|Hostname)"):
            Client(url, "t", keepalive=False).call("GET", "/jobs")


def _pinned(cert: str) -> ssl.SSLContext:
    from batchscore.tlsconfig import pinned_context

    return pinned_context(cert)


def test_a_network_address_without_tls_says_clear_text_first(ws, pki):  # type: ignore[no-untyped-def]
    assert clear_text_warning("127.0.0.1", None) is None
    assert clear_text_warning("::1", None) is None
    assert clear_text_warning("0.0.0.0", server_tls(pki.cert, pki.key)) is None  # nosec B104
    for _address, proc in _serve(ws.settings.root, pki, host="0.0.0.0"):  # nosec B104
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
        assert "clear text" in first and "0.0.0.0" in first, first


@pytest.mark.parametrize("case", ["mismatch", "unreadable", "expired", "only-cert", "not-pem"])
def test_a_bad_certificate_or_key_is_one_message_exit_2(ws, pki, tmp_path, case):  # type: ignore[no-untyped-def]
    cert, key = pki.cert, pki.key
    expect = ""
    if case == "mismatch":
        _, key = pki.leaf("second", "127.0.0.1")
        expect = "the key is not the certificate's"
    elif case == "unreadable":
        key = str(tmp_path / "missing.key")
        expect = "cannot read it"
    elif case == "expired":
        now = datetime.datetime.now(datetime.UTC)
        cert, key = pki.leaf("old", "127.0.0.1", not_before=now - datetime.timedelta(days=30),
                             not_after=now - datetime.timedelta(days=1))
        expect = "expired on"
    elif case == "only-cert":
        key = None
        expect = "go together"
    elif case == "not-pem":
        cert = str(tmp_path / "junk.crt")
        Path(cert).write_text("not a certificate")
        expect = "not a PEM certificate"
    argv = ["serve", "-w", str(ws.settings.root), "--ssl-certfile", cert]
    argv += ["--ssl-keyfile", key] if key else []
    for command in (argv, ["model", "serve", "--model-dir", str(tmp_path), *argv[3:]]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2, result.output
        assert expect in result.output and "Traceback" not in result.output, result.output


def test_a_bad_ca_file_is_one_message(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"--ca-file .*missing\.pem: cannot load"):
        client_verify(str(tmp_path / "missing.pem"))


MODEL = '''
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Total(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        return [float(v) for v in model_input.sum(axis=1)]


set_model(Total())
'''


def _model_folder(tmp_path: Path) -> Path:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    code = tmp_path / "model_code.py"
    code.write_text(textwrap.dedent(MODEL))
    out = tmp_path / "model"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*input example", UserWarning)
        warnings.filterwarnings("ignore", ".*Add type hints", UserWarning)
        mlflow.pyfunc.save_model(str(out), python_model=str(code), pip_requirements=["pandas"],
                                 signature=infer_signature(pd.DataFrame({"a": [1.0], "b": [2.0]})))
    return out


def test_model_serve_serves_over_tls(pki, tmp_path):  # type: ignore[no-untyped-def]
    pytest.importorskip("mlflow")
    folder = _model_folder(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "batchscore", "model", "serve",
                             "--model-dir", str(folder), "--no-log", "--port", str(port),
                             "--ssl-certfile", pki.cert, "--ssl-keyfile", pki.key],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        url = f"https://127.0.0.1:{port}"
        trusted = ssl.create_default_context(cafile=pki.ca_file)
        _wait_https(f"{url}/ping", proc, trusted)
        answer = httpx.post(f"{url}/invocations", verify=trusted, json={
            "dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})
        assert answer.status_code == 200 and answer.json()["predictions"] == [3.0]
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/ping")  # the system's store does not know the test's CA
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/ping", timeout=5)  # no clear text
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_deployment_and_its_children_serve_over_tls(ws, pki, tmp_path, machine_tmp):  # type: ignore[no-untyped-def]
    pytest.importorskip("mlflow")
    from batchscore.registry.models import artifact_location, client, use_registry
    from batchscore.serving.supervisor import list_deployments, start_deployment, stop_deployment

    folder = _model_folder(tmp_path)
    use_registry(ws)
    c = client(ws)
    c.create_registered_model("total")
    import mlflow

    experiment = c.create_experiment("tls", artifact_location=f"{artifact_location(ws)}/tls")
    with mlflow.start_run(experiment_id=experiment) as run:  # artifacts in the workspace
        mlflow.log_artifacts(str(folder), "model")
    version = int(c.create_model_version("total", f"runs:/{run.info.run_id}/model",
                                         run_id=run.info.run_id).version)
    d = start_deployment(ws, "total", version, port=0, log_requests=False, timeout=120,
                         tls=server_tls(pki.cert, pki.key))
    try:
        assert d.url.startswith("https://127.0.0.1:")
        assert [x.url for x in list_deployments(ws)] == [d.url]
        trusted = ssl.create_default_context(cafile=pki.ca_file)
        assert httpx.get(f"{d.url}/version", verify=trusted).json() == {
            "model": "total", "version": str(version)}
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{d.url}/ping")
        assert "tls" not in d.to_dict()  # the JSON of `model deployments` keeps its keys
    finally:
        stop_deployment(ws, "total")
    # the child downloaded the runs:/ version; the copy went with it (MLflow leaves it)
    assert left_in_tmp(machine_tmp) == []
