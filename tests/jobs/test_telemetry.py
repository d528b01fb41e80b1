"""Telemetry over OTLP (issue 19), received by an in-process OTLP/HTTP collector: a small HTTP
server here that decodes the requests with ``opentelemetry-proto``. A job's spans nest (job >
mini-batch > attempt; the workers' score spans under the job) and carry the ids; the resource
names the service and its version; nothing is imported when telemetry is off; a collector that
does not take what is sent never fails a job, and what does not fit the queue is dropped,
counted and warned about."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from batchscore import telemetry
from batchscore.jobs import run_job, spec_from_mapping
from helpers import wait_for

pb = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
logs_pb = pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")
metrics_pb = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Collector:
    """OTLP/HTTP (protobuf) on 127.0.0.1: spans and log records as plain dicts."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.spans: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.hold = hold
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.take(self.path, body)
                if collector.hold is not None:
                    collector.hold.wait(60)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, path: str, body: bytes) -> None:
        with self.lock:
            self.requests.append(path)
        if path == "/v1/traces":
            request = pb.ExportTraceServiceRequest()
            request.ParseFromString(body)
            found = [self._span(rs, span) for rs in request.resource_spans
                     for ss in rs.scope_spans for span in ss.spans]
            with self.lock:
                self.spans.extend(found)
        elif path == "/v1/metrics":
            request = metrics_pb.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            found = [{"name": m.name, "service": self._resource(rm.resource),
                      "points": [({a.key: _value(a.value) for a in p.attributes},
                                  p.as_double if p.HasField("as_double") else p.as_int)
                                 for p in m.gauge.data_points]}
                     for rm in request.resource_metrics for sm in rm.scope_metrics
                     for m in sm.metrics]
            with self.lock:
                self.metrics.extend(found)
        elif path == "/v1/logs":
            request = logs_pb.ExportLogsServiceRequest()
            request.ParseFromString(body)
            found = [{"body": _value(r.body), "severity": r.severity_text,
                      "service": self._resource(rl.resource)}
                     for rl in request.resource_logs for sl in rl.scope_logs
                     for r in sl.log_records]
            with self.lock:
                self.logs.extend(found)

    @staticmethod
    def _resource(resource: Any) -> dict[str, Any]:
        return {a.key: _value(a.value) for a in resource.attributes}

    def _span(self, rs: Any, span: Any) -> dict[str, Any]:
        return {"name": span.name, "trace": span.trace_id.hex(), "id": span.span_id.hex(),
                "parent": span.parent_span_id.hex(), "resource": self._resource(rs.resource),
                "status": span.status.code,
                "attributes": {a.key: _value(a.value) for a in span.attributes}}

    def named(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["name"] == name]

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    found = Collector()
    monkeypatch.setenv(telemetry.ENDPOINT_ENV, found.url)
    yield found
    telemetry.shutdown()
    found.close()


def _wait(predicate: Any, what: str) -> None:
    wait_for(predicate, timeout=60, every=0.1, what=f"the collector to receive {what}")


FLAKY = """
import os
def run(mini_batch):
    mark = os.path.join(os.environ["MARKS"], "failed-once")
    if any(p.endswith("f001.txt") for p in mini_batch) and not os.path.exists(mark):
        open(mark, "w").close()
        raise RuntimeError("the first attempt of f001 fails")
    return [os.path.basename(p) for p in mini_batch]
"""


def test_a_jobs_spans_nest_and_carry_the_ids(ws, script, files, marks, tmp_path, collector):  # type: ignore[no-untyped-def]
    spec = spec_from_mapping({"scoring_script": str(script(FLAKY)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2,
                              "retry_settings": {"max_retries": 2}})
    job = run_job(ws, spec, [str(files(3))], str(tmp_path / "out"))
    assert job.state == "succeeded"
    telemetry.flush()
    _wait(lambda: collector.named("batchscore.job") and len(collector.named(
        "batchscore.score")) >= 4, "the job's span and the workers' four score spans")
    [root] = collector.named("batchscore.job")
    assert root["attributes"]["batchscore.job.id"] == job.id
    assert root["attributes"]["batchscore.job.state"] == "succeeded"
    assert root["parent"] == ""  # the root of the job's trace
    assert root["resource"]["service.name"] == "batchscore-runner"
    assert root["resource"]["service.version"]
    minibatches = {s["attributes"]["batchscore.minibatch.index"]: s
                   for s in collector.named("batchscore.minibatch")}
    assert sorted(minibatches) == [0, 1, 2]
    assert all(s["parent"] == root["id"] and s["trace"] == root["trace"]
               for s in minibatches.values())
    attempts = collector.named("batchscore.attempt")
    by_index: dict[int, list[dict[str, Any]]] = {}
    for a in attempts:
        assert a["attributes"]["batchscore.job.id"] == job.id and a["trace"] == root["trace"]
        index = a["attributes"]["batchscore.minibatch.index"]
        assert a["parent"] == minibatches[index]["id"]  # under its own mini-batch
        assert a["attributes"]["batchscore.worker"].count(":") == 1  # host:pid
        by_index.setdefault(index, []).append(a)
    assert {i: sorted(a["attributes"]["batchscore.attempt"] for a in v)
            for i, v in by_index.items()} == {0: [1], 1: [1, 2], 2: [1]}
    first = next(a for a in by_index[1] if a["attributes"]["batchscore.attempt"] == 1)
    assert first["attributes"]["batchscore.outcome"] == "error" and first["status"] == 2
    scores = collector.named("batchscore.score")  # exported by the worker processes
    assert all(s["parent"] == root["id"] and s["trace"] == root["trace"] for s in scores)
    assert {s["resource"]["service.name"] for s in scores} == {"batchscore-worker"}
    assert {(s["attributes"]["batchscore.minibatch.index"], s["attributes"]["batchscore.attempt"])
            for s in scores} == {(0, 1), (1, 1), (1, 2), (2, 1)}


def test_logs_are_exported(collector):  # type: ignore[no-untyped-def]
    assert telemetry.setup("batchscore-service")
    logging.getLogger("batchscore.service").warning("a record for the collector")
    telemetry.flush()
    _wait(lambda: any(r["body"] == "a record for the collector" for r in collector.logs),
          "the log record")
    record = next(r for r in collector.logs if r["body"] == "a record for the collector")
    assert record["severity"] == "WARN" or record["severity"] == "WARNING"
    assert record["service"]["service.name"] == "batchscore-service"


def test_the_service_exports_its_metrics(ws, collector):  # type: ignore[no-untyped-def]
    import warnings

    from batchscore.service import ServiceConfig, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(create_app(ws, ServiceConfig(background=False))):
        telemetry.flush()  # the metric reader collects /metrics' values and sends them
        _wait(lambda: any(m["name"] == "batchscore_run_slots_busy" for m in collector.metrics),
              "the service's metrics")
    names = {m["name"] for m in collector.metrics}
    assert {"batchscore_jobs", "batchscore_minibatches", "batchscore_queue_depth"} <= names
    slots = next(m for m in collector.metrics if m["name"] == "batchscore_run_slots_busy")
    assert slots["points"] == [({}, 0.0)] and slots["service"]["service.name"] == (
        "batchscore-service")


def test_a_collector_that_holds_never_fails_a_job_and_drops_are_counted(  # type: ignore[no-untyped-def]
        ws, script, files, tmp_path, monkeypatch, caplog):
    held = Collector(hold=threading.Event())
    monkeypatch.setenv(telemetry.ENDPOINT_ENV, held.url)
    monkeypatch.setenv(telemetry.QUEUE_ENV, "4")
    try:
        spec = spec_from_mapping({"scoring_script": str(script("def run(mb):\n    return mb\n")),
                                  "mini_batch_size": 1})
        job = run_job(ws, spec, [str(files(6))], str(tmp_path / "out"))
        assert job.state == "succeeded"
        _wait(lambda: held.requests, "a first export (which it holds)")
        before = telemetry.dropped()
        with caplog.at_level(logging.WARNING, logger="batchscore.telemetry"), \
                telemetry.job_trace(None, "burst", "burst", "entry_script"):
            telemetry.record_attempts([  # 100 spans at once: far over a queue of 4
                {"minibatch": i, "attempt": 1, "worker": "h:1", "start": 1.0, "end": 2.0,
                 "items": 1, "outcome": "ok"} for i in range(50)])
        assert telemetry.dropped() > before
        assert "export queue (4 entries) is full" in caplog.text
    finally:
        held.hold.set()  # type: ignore[union-attr]
        telemetry.shutdown()
        held.close()


def test_off_by_default_nothing_is_imported(ws, script, files, tmp_path):  # type: ignore[no-untyped-def]
    plain = str(script("def run(mb):\n    return mb\n"))
    code = f"""
import sys
from batchscore.jobs import run_job, spec_from_mapping
from batchscore.workspace import open_workspace
ws = open_workspace({str(ws.settings.root)!r})
spec = spec_from_mapping({{"scoring_script": {plain!r}}})
assert run_job(ws, spec, [{str(files(2))!r}], {str(tmp_path / "out")!r}).state == "succeeded"
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out.strip() == "[]", out
