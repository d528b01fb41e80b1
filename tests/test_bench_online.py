"""benchmarks/online.py: runs end to end with tiny settings; its checks catch what they guard."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from batchscore.serving import InferenceLogger

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "online.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_online", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_and_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "online.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "0.5", "--warmup", "0.25", "--repeat", "1",
         "--clients", "1,4", "--rows", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == {"mlflow": 0, "batchscore": 0, "batchscore+log": 0}
    assert result["predictions"]["ok"] and result["predictions"]["max_abs_diff"] < 1e-6
    check = result["logging_check"]
    assert check["ok"] and check["logged_rows"] == check["expected_rows"] > 0
    assert check["logged_request_ids"] == check["expected_request_ids"]
    # every timed request of the logging server was logged, plus one verification request
    answered = sum(r["ok_total"] for r in result["runs"] if r["server"] == "batchscore+log")
    assert check["expected_rows"] == answered + 1
    assert [(c["rows"], c["clients"]) for c in result["cells"]] == [(1, 1), (1, 4)]
    assert len(result["runs"]) == 6
    assert result["servers"]["mlflow"].startswith("mlflow models serve -m models:/")
    assert "--no-log" in result["servers"]["batchscore"]
    assert "--no-log" not in result["servers"]["batchscore+log"]
    for cell in result["cells"]:
        for figures in cell["servers"].values():
            assert figures["req_per_s"]["median"] > 0
            assert 0 < figures["p50_ms"]["median"] <= figures["p99_ms"]["median"]
        for value in cell["ratios"].values():
            assert math.isfinite(value["median"]), cell["ratios"]
        assert cell["ratios"]["batchscore_vs_mlflow_req_per_s"]["median"] > 0
    assert "request logging:" in proc.stdout and ": ok" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--clients", "0"], "--clients: '0': give one or more integers >= 1"),
    (["--clients", "1,x"], "--clients: '1,x' is not a comma-separated list of integers"),
    (["--rows", ""], "--rows: '': give one or more integers >= 1"),
    (["--seconds", "-1"], "--seconds: '-1' must be > 0"),
    (["--warmup", "soon"], "--warmup: 'soon' is not a number"),
    (["--repeat", "0"], "--repeat: '0' must be >= 1"),
    (["--json", "/nonexistent-folder/x.json"], "the folder /nonexistent-folder does not exist"),
])
def test_bad_arguments_exit_2_naming_the_option(bench: ModuleType, args: list[str],
                                                 message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_server_that_exits_at_start_is_reported_with_its_log(bench: ModuleType,
                                                               tmp_path: Path) -> None:
    server = bench.Server("broken", [sys.executable, "-c",
                                     "import sys; print('no model here'); sys.exit(3)"],
                          {}, tmp_path / "broken.log")
    server.start()
    with pytest.raises(SystemExit, match=r"(?s)the broken server exited with code 3 .*"
                                         r"no model here"):
        server.wait_ready(60)


def test_a_server_that_never_answers_is_stopped_and_reported(bench: ModuleType,
                                                             tmp_path: Path) -> None:
    server = bench.Server("silent", [sys.executable, "-c", "import time; time.sleep(60)"],
                          {}, tmp_path / "silent.log")
    server.start()
    with pytest.raises(SystemExit, match="the silent server did not answer /ping within 1 s"):
        server.wait_ready(1)
    assert server.proc.poll() is not None  # stopped, not left behind


class _Answer(BaseHTTPRequestHandler):
    """Answers /invocations with the status and predictions the test sets on the server."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, payload = self.server.answer  # type: ignore[attr-defined]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class _Fixed:
    def predict(self, frame: pd.DataFrame) -> list[float]:
        return [1.5] * len(frame)


@pytest.mark.parametrize(("answer", "message"), [
    ((200, {"predictions": [1.5, 9.0]}), "odd returned different predictions for the 2-row body"),
    ((200, {"predictions": [1.5]}), "odd returned different predictions for the 2-row body"),
    ((500, {"error": "boom"}), "odd answered HTTP 500 to the 2-row body"),
])
def test_servers_that_disagree_with_the_model_stop_the_benchmark(
        bench: ModuleType, answering: ThreadingHTTPServer, tmp_path: Path,
        answer: tuple[int, object], message: str) -> None:
    answering.answer = answer  # type: ignore[attr-defined]
    server = bench.Server("odd", [], {}, tmp_path / "odd.log", port=answering.server_address[1])
    bodies = {2: bench.request_body(2)}
    with pytest.raises(SystemExit, match=message):
        bench.check_predictions({"odd": server}, bodies, _Fixed())
    answering.answer = (200, {"predictions": [1.5, 1.5]})  # type: ignore[attr-defined]
    assert bench.check_predictions({"odd": server}, bodies, _Fixed())["ok"]


def test_logged_rows_counts_rows_and_request_ids(bench: ModuleType, ws) -> None:  # type: ignore[no-untyped-def]
    folder = ws.data.local_path("inference-logs")
    assert bench.logged_rows(folder) == (0, 0)
    logger = InferenceLogger(ws.data, flush_seconds=60)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    logger.log(frame, [1, 2, 3], request_id="r1", model="m", version="1")
    logger.log(frame.iloc[:1], [1], request_id="r2", model="m", version="1")
    logger.log(frame.iloc[:1], [1], request_id="r2", model="m", version="1")  # a repeated id
    logger.close()
    assert bench.logged_rows(folder) == (5, 2)


def test_summary_takes_medians_of_per_repetition_ratios(bench: ModuleType) -> None:
    runs = []
    for rep, (m, b, c) in enumerate([(100, 200, 100), (300, 300, 150), (200, 100, 100)]):
        for name, rate in zip(bench.SERVERS, (m, b, c), strict=True):
            runs.append({"rep": rep, "server": name, "rows": 1, "clients": 4,
                         "req_per_s": rate, "p50_ms": 1000 / rate, "p99_ms": 2000 / rate,
                         "server_cpu_ms_per_req": 1.0, "client_cpu_ms_per_req": 0.5,
                         "other_cpu_share": 0.1, "errors_total": rep})
    [cell] = bench.summarise(runs, [1], [4])
    ratios = cell["ratios"]
    # per repetition: batchscore / mlflow 2.0, 1.0, 0.5; with / without logging 0.5, 0.5, 1.0;
    # p50 with - without logging 5.0, 3.33, 0.0 ms
    assert ratios["batchscore_vs_mlflow_req_per_s"] == {"median": 1.0, "min": 0.5, "max": 2.0}
    assert ratios["logging_req_per_s"] == {"median": 0.5, "min": 0.5, "max": 1.0}
    assert ratios["logging_p50_delta_ms"]["median"] == pytest.approx(10 / 3)
    assert ratios["batchscore_vs_mlflow_req_per_cpu_s"]["median"] == 1.0  # same CPU per request
    assert ratios["logging_cpu_ms_per_req_delta"]["median"] == 0.0
    assert cell["servers"]["mlflow"]["req_per_s"]["median"] == 200
    assert cell["servers"]["batchscore"]["errors"] == 3


def test_lists_are_taken_once_each_in_order(bench: ModuleType) -> None:
    args = bench.parse_args(["--clients", "64,1,64", "--rows", "100, 1"])
    assert args.clients == [64, 1] and args.rows == [100, 1]
    defaults = bench.parse_args([])
    assert (defaults.seconds, defaults.warmup, defaults.repeat) == (3.0, 1.0, 6)
    assert defaults.clients == [1, 64] and defaults.rows == [1, 100]
