"""Traces, metrics and logs over OTLP/HTTP with the OpenTelemetry SDK (issue 19).

Off by default: nothing here imports OpenTelemetry, and nothing is exported, unless the
workspace's ``[telemetry] otlp_endpoint`` or the standard ``$OTEL_EXPORTER_OTLP_ENDPOINT`` names
a collector (``http://host:4318``; ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` are added).

- **Traces.** A job is a trace: its ``batchscore.job`` span (in the runner: the CLI or the
  service's run slot), one ``batchscore.minibatch`` span per mini-batch under it, and one
  ``batchscore.attempt`` span per attempt under that (times as the workers measured them), with
  ``batchscore.job.id``, ``batchscore.minibatch.index``, ``batchscore.attempt`` and
  ``batchscore.worker``; each worker process adds a ``batchscore.score`` span per mini-batch it
  scores, under the job's span (the job span's ids are derived from the job id, so that a
  worker on another machine finds its parent without being told).
- **Metrics.** The service exports what ``/metrics`` shows, as gauges.
- **Logs.** Records of the ``batchscore`` loggers.

Every resource carries ``service.name`` (``batchscore-service``, ``batchscore-runner``,
``batchscore-worker``) and ``service.version``. Export runs on the SDK's background threads,
from a bounded queue (``$BATCHSCORE_OTLP_QUEUE`` entries, default 2048): a collector that does
not answer never slows or fails a job; what does not fit is dropped, counted (:func:`dropped`)
and warned about (the first time, then every 1000th).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "ENDPOINT_ENV",
    "dropped",
    "endpoint",
    "flush",
    "job_finished",
    "job_trace",
    "observe_metrics",
    "record_attempts",
    "setup",
    "shutdown",
    "worker_span",
]

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
QUEUE_ENV = "BATCHSCORE_OTLP_QUEUE"
EXPORT_TIMEOUT_S = 5.0
log = logging.getLogger("batchscore.telemetry")

_lock = threading.Lock()
_on: dict[str, Any] = {}  # pid, tracer, meter, providers, endpoint
_dropped = [0]
_job: contextvars.ContextVar[_JobTrace | None] = contextvars.ContextVar("job_trace",
                                                                         default=None)
_next_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "next_ids", default=None)


def endpoint(configured: str | None = None) -> str | None:
    """The collector: the workspace's ``otlp_endpoint``, else ``$OTEL_EXPORTER_OTLP_ENDPOINT``."""
    return (configured or os.environ.get(ENDPOINT_ENV) or "").strip() or None


def dropped() -> int:
    """Spans and log records dropped so far in this process (the export queue was full)."""
    return _dropped[0]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchscore")
    except PackageNotFoundError:
        return "0+unknown"


class _DropCounter(logging.Filter):
    """Counts the SDK's "Queue full, dropping" records; lets one warning through per 1000."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(("Queue full", "Queue is full")):
            return True
        _dropped[0] += 1
        if _dropped[0] == 1 or _dropped[0] % 1000 == 0:
            log.warning("telemetry: the OTLP export queue (%s entries) is full: %d dropped so "
                        "far; is the collector at %s up?", _queue_size(), _dropped[0],
                        _on.get("endpoint"))
        return False


def _queue_size() -> int:
    try:
        return max(1, int(os.environ.get(QUEUE_ENV, "2048")))
    except ValueError:
        return 2048


def setup(service: str, configured: str | None = None) -> bool:
    """Start exporting from this process as ``service`` when a collector is configured;
    False (and nothing imported) when none is. Idempotent in a process (a forked child sets
    up its own)."""
    url = endpoint(configured)
    if url is None:
        return False
    with _lock:
        if _on.get("pid") == os.getpid():
            return True
        _start(service, url.rstrip("/"))
        os.environ.setdefault(ENDPOINT_ENV, url)  # the workers this process starts export too
    return True


def _start(service: str, url: str) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "service.version": _version()})
    queue = _queue_size()
    traces = TracerProvider(resource=resource, id_generator=_ids())
    traces.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=EXPORT_TIMEOUT_S),
        max_queue_size=queue, max_export_batch_size=min(512, queue),
        # a worker process may end soon after its last mini-batch: send every half second
        schedule_delay_millis=500 if service == "batchscore-worker" else 5000))
    meters = None if service != "batchscore-service" else MeterProvider(  # /metrics' values
        resource=resource, metric_readers=[PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{url}/v1/metrics", timeout=EXPORT_TIMEOUT_S))])
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=f"{url}/v1/logs", timeout=EXPORT_TIMEOUT_S),
        max_queue_size=queue, max_export_batch_size=min(512, queue)))
    with warnings.catch_warnings():  # deprecated for opentelemetry-instrumentation-logging's,
        warnings.simplefilter("ignore", DeprecationWarning)  # which adds a dependency tree
        handler = LoggingHandler(level=logging.INFO, logger_provider=logs)
    batchscore_log = logging.getLogger("batchscore")
    for old in _on.get("handlers", []):  # a forked child: not the parent's handler
        batchscore_log.removeHandler(old)
    batchscore_log.addHandler(handler)
    sdk_log = logging.getLogger("opentelemetry.sdk._shared_internal")
    if not any(isinstance(f, _DropCounter) for f in sdk_log.filters):
        # first: the SDK's own filter lets one "Queue full" record through, not each
        sdk_log.filters.insert(0, _DropCounter())
    _on.update(pid=os.getpid(), endpoint=url, traces=traces, meters=meters, logs=logs,
               tracer=traces.get_tracer("batchscore", _version()),
               meter=meters.get_meter("batchscore", _version()) if meters else None,
               handlers=[handler])


def _ids() -> Any:
    """Random ids, except where :func:`_job_ids` asks for the job's own."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class JobIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            chosen = _next_ids.get()
            return chosen[0] if chosen else super().generate_trace_id()

        def generate_span_id(self) -> int:
            chosen = _next_ids.get()
            return chosen[1] if chosen else super().generate_span_id()

    return JobIds()


def _job_ids(job_id: str) -> tuple[int, int]:
    """The trace id and the job span's id of job ``job_id`` (the same in every process)."""
    digest = hashlib.sha256(f"batchscore-job:{job_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def flush(timeout_s: float = EXPORT_TIMEOUT_S) -> None:
    """Export what is queued now (a worker before it exits; tests), waiting at most
    ``timeout_s`` (the SDK's own flush does not bound its wait)."""
    if _on.get("pid") != os.getpid():
        return
    providers = [_on[name] for name in ("traces", "logs", "meters") if _on.get(name)]

    def export() -> None:
        for provider in providers:
            with contextlib.suppress(Exception):
                provider.force_flush()

    thread = threading.Thread(target=export, name="otlp-flush", daemon=True)
    thread.start()
    thread.join(timeout_s)


def shutdown() -> None:
    """Flush, then stop exporting from this process (a later :func:`setup` starts again)."""
    with _lock:
        if _on.get("pid") == os.getpid():
            for name in ("traces", "meters", "logs"):
                if _on.get(name) is not None:
                    with contextlib.suppress(Exception):
                        _on[name].shutdown()
        for handler in _on.get("handlers", []):
            logging.getLogger("batchscore").removeHandler(handler)
        _on.clear()


# -- a job's trace (the runner) ----------------------------------------------------------------


class _JobTrace:
    def __init__(self, tracer: Any, span: Any, job_id: str) -> None:
        self.tracer, self.span, self.job_id = tracer, span, job_id
        self.minibatches: dict[int, Any] = {}

    def attempt(self, t: dict[str, Any]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        idx, outcome = int(t["minibatch"]), str(t["outcome"])
        end = t.get("end")
        start = t.get("start") or end
        start_ns = int(start * 1e9) if start else None
        attrs = {"batchscore.job.id": self.job_id, "batchscore.minibatch.index": idx}
        parent = self.minibatches.get(idx)
        if parent is None:
            parent = self.tracer.start_span(
                "batchscore.minibatch", context=trace.set_span_in_context(self.span),
                attributes={**attrs, "batchscore.minibatch.items": int(t.get("items") or 0)},
                start_time=start_ns)
            self.minibatches[idx] = parent
        span = self.tracer.start_span(
            "batchscore.attempt", context=trace.set_span_in_context(parent), start_time=start_ns,
            attributes={**attrs, "batchscore.attempt": int(t["attempt"]),
                        "batchscore.worker": str(t.get("worker") or ""),
                        "batchscore.outcome": outcome})
        if outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end(int(end * 1e9) if end else None)
        if outcome == "ok":
            parent.end(int(end * 1e9) if end else None)
            del self.minibatches[idx]

    def finish(self, state: str, reason: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        for span in self.minibatches.values():
            span.set_status(Status(StatusCode.ERROR, "not scored"))
            span.end()
        self.minibatches.clear()
        self.span.set_attribute("batchscore.job.state", state)
        if state != "succeeded":
            self.span.set_status(Status(StatusCode.ERROR, reason or state))


@contextlib.contextmanager
def job_trace(configured: str | None, job_id: str, name: str, kind: str) -> Iterator[None]:
    """The ``batchscore.job`` span around a run of job ``job_id`` (nothing when off)."""
    if not setup("batchscore-runner", configured):
        yield
        return
    tracer = _on["tracer"]
    token_ids = _next_ids.set(_job_ids(job_id))
    try:
        span = tracer.start_span("batchscore.job", attributes={
            "batchscore.job.id": job_id, "batchscore.job.name": name, "batchscore.job.kind": kind})
    finally:
        _next_ids.reset(token_ids)
    token = _job.set(_JobTrace(tracer, span, job_id))
    try:
        yield
    except BaseException as exc:
        span.record_exception(exc)
        raise
    finally:
        current = _job.get()
        if current is not None and "batchscore.job.state" not in (span.attributes or {}):
            with contextlib.suppress(Exception):
                current.finish("interrupted", None)  # the runner did not reach _finish
        _job.reset(token)
        span.end()


def record_attempts(timings: list[dict[str, Any]]) -> None:
    """The runner's finished attempts (its timings records) as spans of the current job."""
    current = _job.get()
    if current is None:
        return
    for t in timings:
        with contextlib.suppress(Exception):  # telemetry never fails a job
            current.attempt(t)


def job_finished(state: str, reason: str | None) -> None:
    current = _job.get()
    if current is not None:
        with contextlib.suppress(Exception):
            current.finish(state, reason)


# -- workers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def worker_span(job_id: str, idx: int, attempt: int, worker: str) -> Iterator[None]:
    """A worker's ``batchscore.score`` span for one mini-batch, under the job's span."""
    if not setup("batchscore-worker"):
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    trace_id, span_id = _job_ids(job_id)
    parent = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True,
                                          trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    with _on["tracer"].start_as_current_span(
            "batchscore.score", context=trace.set_span_in_context(parent), attributes={
                "batchscore.job.id": job_id, "batchscore.minibatch.index": idx,
                "batchscore.attempt": attempt, "batchscore.worker": worker}):
        yield


# -- the service's metrics -------------------------------------------------------------------


def observe_metrics(source: Callable[[], str | bytes]) -> bool:
    """Export the Prometheus text of ``source`` (the service's ``/metrics``) as OTLP gauges,
    read at each export; False when telemetry is off."""
    if _on.get("meter") is None or _on.get("pid") != os.getpid():
        return False
    from opentelemetry.metrics import Observation
    from prometheus_client.parser import text_string_to_metric_families

    def families() -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        text = source()
        for family in text_string_to_metric_families(
                text.decode() if isinstance(text, bytes) else text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append(sample)
        return found

    def gauge(name: str) -> Callable[[Any], list[Any]]:
        def read(_options: Any) -> list[Any]:
            return [Observation(s.value, dict(s.labels)) for s in families().get(name, [])]
        return read

    for name in families():
        _on["meter"].create_observable_gauge(name, callbacks=[gauge(name)])
    return True
