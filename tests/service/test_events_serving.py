"""End to end: a scoring app whose model fails or slows down on demand raises anomaly events
that land in the state database and show in ``GET /api/v1/events`` of a live ``batchscore
serve``; the scoring app's own ``/events`` and ``/metrics`` show them too; shutting it down
resolves what is still on. Then the same through a real serving process (a deployment's
child, and ``batchscore model serve``) on an MLflow model, and a bad setting refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from svc_helpers import TestClient, wait_for
from typer.testing import CliRunner

from batchscore.cli import app as cli_app
from batchscore.serving import ServedModel, create_app
from batchscore.serving.anomaly import AnomalyConfig
from batchscore.serving.app import model_detector
from batchscore.state.events import EventWriter, list_events
from servers import free_port

SIG = [("a", "double"), ("b", "double")]
ROWS = {"instances": [[1.0, 2.0], [3.0, 4.0]]}


class Timer:
    """The clock that the app measures latencies with: it moves only when the model says how
    long it took, so "slow" does not depend on how busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A model that answers, fails (raises) or is slow, as ``mode`` says: it advances
    ``timer`` by 2 ms, or 400 ms when slow."""

    def __init__(self, timer: Timer | None = None) -> None:
        self.mode = "ok"
        self.timer = timer or Timer()

    def __call__(self, frame: pd.DataFrame) -> list[float]:
        self.timer.now += 0.4 if self.mode == "slow" else 0.002
        if self.mode == "fail":
            raise RuntimeError("the feature store is down")
        return frame.sum(axis=1).astype(float).tolist()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def api(url: str, path: str) -> Any:
    token = os.environ["BATCHSCORE_TOKEN"]  # the service fixture's admin token
    response = httpx.get(f"{url}/api/v1{path}", timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_anomalies_reach_the_state_db_and_the_live_service(ws, service):
    model, clock = Flaky(), Clock()
    config = AnomalyConfig(window_s=10, min_requests=5, check_every_s=0, sample_every_s=2,
                           min_baseline_samples=3, latency_floor_s=0.05)
    detector = model_detector(ServedModel("flaky", "7", SIG, model), config, clock=clock,
                              timer=model.timer)
    writer = EventWriter(ws.engine)
    app = create_app(ServedModel("flaky", "7", SIG, model), detector=detector, events=writer)

    def send(n: int, status: int, step: float = 1.0) -> None:
        for _ in range(n):
            clock.now += step
            response = client.post("/invocations", json=ROWS)
            assert response.status_code == status, response.text

    with TestClient(app) as client:
        send(20, 200)  # normal traffic: the latency baseline is learnt
        assert detector.baseline() is not None
        model.mode = "fail"
        send(5, 500)
        model.mode = "slow"
        send(6, 200)  # slow (0.4 s) against a baseline of milliseconds
        assert {e.kind for e in detector.active()} == {"error_rate", "latency"}

        metrics = client.get("/metrics").text
        assert 'batchscore_serving_anomaly{kind="error_rate"} 1.0' in metrics
        assert 'batchscore_serving_anomaly{kind="latency"} 1.0' in metrics
        assert 'batchscore_serving_anomaly{kind="client_error_rate"} 0.0' in metrics
        assert 'batchscore_serving_errors_total{route="/invocations",status="500"} 5.0' in (
            metrics)
        local = client.get("/events").json()
        assert local["subject"] == "flaky/7"
        assert {e["kind"] for e in local["active"]} == {"error_rate", "latency"}
        assert [(e["kind"], e["state"]) for e in local["recent"]] == [
            ("latency", "raised"), ("error_rate", "raised")]  # newest first
        assert local["baseline_s"] == pytest.approx(detector.baseline())

        assert writer.flush(10)
        stored = list_events(ws.engine, source="serving")
        assert [(e.kind, e.state) for e in stored] == [("latency", "raised"),
                                                       ("error_rate", "raised")]
        slow, failing = stored
        assert failing.severity == "critical" and failing.subject == "flaky/7"
        assert failing.message.startswith("5xx error rate ") and failing.details["errors"] >= 1
        assert failing.details["model"] == "flaky" and failing.details["pid"] == os.getpid()
        assert slow.details["latency_s"] > 0.1 and slow.details["ratio"] > 3

        listed = api(service, "/events?source=serving")
        assert [(e["kind"], e["state"], e["ongoing"]) for e in listed] == [
            ("latency", "raised", True), ("error_rate", "raised", True)]
        assert listed[1]["message"] == failing.message
        assert [e["kind"] for e in api(service, "/events/ongoing")] == ["latency",
                                                                        "error_rate"]

        model.mode = "ok"
        send(12, 200, step=2.0)  # 24 s later the window holds good, fast requests only
        assert detector.active() == []
        assert writer.flush(10)
        listed = api(service, "/events?source=serving")
        assert sorted((e["kind"], e["state"]) for e in listed[:2]) == [
            ("error_rate", "resolved"), ("latency", "resolved")]
        assert not any(e["ongoing"] for e in listed)
        assert api(service, "/events/ongoing") == []

        model.mode = "fail"
        send(5, 500)
    # leaving the client shuts the app down: what is still on is resolved, the writer flushed
    last = list_events(ws.engine, limit=1)[0]
    assert (last.kind, last.state) == ("error_rate", "resolved")
    assert last.message.startswith("no longer watched: the scoring process stopped")
    assert api(service, "/events/ongoing") == []


@pytest.fixture
def client() -> Any:
    model = Flaky()
    served = ServedModel("flaky", "7", SIG, model)
    app = create_app(served, detector=model_detector(
        served, AnomalyConfig(min_requests=5, check_every_s=0)))
    with TestClient(app) as test_client:
        test_client.model = model  # type: ignore[attr-defined]
        yield test_client


def test_a_model_that_raises_is_a_500_with_its_message(client):
    client.model.mode = "fail"
    response = client.post("/invocations", json=ROWS, headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.json() == {"error_code": "INTERNAL_ERROR", "message":
                               "the model failed: RuntimeError: the feature store is down"}
    assert response.headers["x-request-id"] == "r-1"
    v2 = client.post("/v2/models/flaky/infer", json={"inputs": [
        {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]})
    assert v2.status_code == 500 and v2.json()["error_code"] == "INTERNAL_ERROR"
    text = client.get("/metrics").text
    assert 'batchscore_serving_errors_total{route="/invocations",status="500"} 1.0' in text
    assert ('batchscore_serving_errors_total{route="/v2/models/{name}/infer",status="500"} '
            '1.0') in text


def test_an_answer_that_cannot_be_sent_is_a_500_and_is_judged():
    served = ServedModel("odd", "1", SIG, lambda frame: [object()] * len(frame))
    detector = model_detector(served, AnomalyConfig(min_requests=5, check_every_s=0))
    with TestClient(create_app(served, detector=detector)) as client:
        for _ in range(5):
            response = client.post("/invocations", json=ROWS, headers={"X-Request-ID": "r-2"})
            assert response.status_code == 500
            assert response.json()["error_code"] == "INTERNAL_ERROR"
            assert response.json()["message"].startswith("the server failed: TypeError: ")
            assert response.headers["x-request-id"] == "r-2"
        assert [e.kind for e in detector.active()] == ["error_rate"]


def test_only_scoring_requests_are_judged(client):
    for _ in range(30):
        assert client.get("/ping").status_code == 200
        assert client.get("/nowhere").status_code == 404  # not a route: not judged
    assert client.get("/events").json()["active"] == []
    for _ in range(6):
        assert client.post("/v2/models/other/infer", json={}).status_code == 404
    active = client.get("/events").json()["active"]
    assert [(e["kind"], e["severity"]) for e in active] == [("client_error_rate", "warning")]


# --- a real serving process on an MLflow model -------------------------------------------------

FLAKY_MODEL = '''
import json
import os

import mlflow
import pandas as pd


class Flaky(mlflow.pyfunc.PythonModel):
    """Sums the row; fails while the file named by $FLAKY_MODE_FILE says "fail"."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        path = os.environ.get("FLAKY_MODE_FILE", "")
        if path and os.path.exists(path) and open(path).read().strip() == "fail":
            raise RuntimeError("the feature store is down")
        return model_input.sum(axis=1).tolist()


mlflow.models.set_model(Flaky())
'''


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    root = tmp_path_factory.mktemp("flaky")
    code = root / "flaky.py"
    code.write_text(textwrap.dedent(FLAKY_MODEL))
    signature = ModelSignature(inputs=Schema([ColSpec("double", "a"), ColSpec("double", "b")]))
    with warnings.catch_warnings():  # mlflow asks for type hints on predict()
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(root / "model"), python_model=str(code),
                                 signature=signature)
    (root / "model" / "batchscore-model.json").write_text('{"name": "flaky", "version": "2"}')
    return root / "model"


def _start(how: str, model: Path, ws_root: Path, env: dict[str, str]
           ) -> tuple[subprocess.Popen[bytes], str]:
    if how == "child":  # as the deployment supervisor starts it, on an inherited socket
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "batchscore.serving.child", "--fd", str(sock.fileno()),
               "--model-dir", str(model), "--workspace", str(ws_root), "--no-log",
               "--graceful", "30"]
        proc = subprocess.Popen(cmd, pass_fds=(sock.fileno(),), env=env, cwd=ws_root.parent,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        sock.close()
    else:
        port = free_port()
        cmd = [sys.executable, "-m", "batchscore", "model", "serve", "--model-dir", str(model),
               "-w", str(ws_root), "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, cwd=ws_root.parent, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["child", "cli"])
def test_a_serving_process_writes_its_anomalies_to_the_workspace(ws, model_dir, tmp_path, how):
    mode = tmp_path / "mode"
    env = {**os.environ, "FLAKY_MODE_FILE": str(mode),
           "BATCHSCORE_ANOMALY_MIN_REQUESTS": "5", "BATCHSCORE_ANOMALY_CHECK_EVERY_S": "0",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc, url = _start(how, model_dir, ws.settings.root, env)
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                return httpx.get(f"{url}/ping", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=120)
        assert httpx.post(f"{url}/invocations", json=ROWS).json() == {"predictions": [3.0, 7.0]}
        mode.write_text("fail")
        for _ in range(5):
            answer = httpx.post(f"{url}/invocations", json=ROWS, timeout=10)
            assert answer.status_code == 500
            assert answer.json()["message"] == (
                "the model failed: RuntimeError: the feature store is down")
        raised = wait_for(lambda: list_events(ws.engine, kind="error_rate"), timeout=30)
        assert [(e.subject, e.state, e.severity) for e in raised] == [
            ("flaky/2", "raised", "critical")]
        assert raised[0].details["pid"] == proc.pid
        assert 'batchscore_serving_anomaly{kind="error_rate"} 1.0' in httpx.get(
            f"{url}/metrics").text
        proc.send_signal(signal.SIGTERM)  # a clean stop resolves it
        # uvicorn.run re-raises SIGTERM once it has shut down cleanly
        assert proc.wait(60) == (0 if how == "child" else -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    states = [e.state for e in list_events(ws.engine, kind="error_rate")]
    assert states == ["resolved", "raised"]


def test_a_bad_anomaly_setting_is_refused_with_its_name(tmp_path):
    result = CliRunner().invoke(cli_app, ["model", "serve", "--model-dir", str(tmp_path)],
                                env={"BATCHSCORE_ANOMALY_WINDOW_S": "a minute"})
    assert result.exit_code == 2
    assert "$BATCHSCORE_ANOMALY_WINDOW_S must be a number, got 'a minute'" in result.stderr
    assert "Traceback" not in result.output


def _holds(pid: int, client: socket.socket) -> bool:
    """Whether process ``pid`` has accepted ``client``'s connection (holds its other end)."""
    import psutil

    proc = psutil.Process(pid)
    listing = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6
    mine = client.getsockname()[1]
    return any(c.raddr and c.raddr[1] == mine for c in listing(kind="tcp4"))


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError:
        return True
    return False


@pytest.mark.slow
def test_a_draining_child_answers_a_connection_it_accepted_before_sigterm(ws, model_dir,
                                                                         tmp_path):
    """A swap sends the old child SIGTERM while a client that has just connected (to the old
    child) has not sent its request yet: the child must wait for that request and answer it,
    however long the client takes (within the graceful period), not close the connection."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc, url = _start("child", model_dir, ws.settings.root, env)
    try:
        wait_for(lambda: _ping(proc, url), timeout=120)
        host, port = url.removeprefix("http://").split(":")
        client = socket.create_connection((host, int(port)), timeout=60)
        wait_for(lambda: _holds(proc.pid, client), timeout=60)  # accepted, nothing sent yet
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _refused(url), timeout=60)  # it no longer accepts: it drains
        # a slow client: longer than the fixed second the child used to wait before closing
        # every connection without a request (the scenario, not a wait for something to happen)
        time.sleep(1.5)
        body = b'{"instances": [[1.0, 2.0]]}'
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        client.close()
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer
        # and the connection closed after it (the loop above read to the end): it went away
        assert json.loads(payload) == {"predictions": [3.0]}
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _ping(proc: subprocess.Popen[bytes], url: str) -> bool:
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    try:
        return httpx.get(f"{url}/ping", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
