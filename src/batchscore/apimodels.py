"""The answers of the REST API (``/api/v1``), as pydantic models: the service declares them
(the OpenAPI document describes each one) and the client (:mod:`batchscore.client`) returns them.

Each model names exactly the keys the service sends, in the order it sends them (responses
are validated against these models: a key the model does not know fails the request with a
500 instead of vanishing, hence ``extra="forbid"``). A key sent only sometimes has a default
and its route is declared with ``response_model_exclude_unset=True`` so that an absent key
stays absent. Free-form documents (a run's parameters, a job's spec, its logs' events) are
``dict[str, Any]``.

An answer that sends a record (a job, a run, a trigger...) takes its fields from the record's
dataclass (:func:`record_model`): names, types and order are written once, in the dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from .connections import Connection
from .endpoints.deployments import Deployment
from .endpoints.endpoints import Endpoint
from .state.events import Event
from .state.jobs import Job, MiniBatch
from .state.runs import Run
from .streaming.streams import Stream
from .triggers.definitions import Trigger

__all__ = [
    "ConnectionRecord", "ConsumerStatus", "DeploymentInvocationLinks",
    "DeploymentInvocationStarted", "DeploymentRecord", "DownloadLink", "EndpointDetail",
    "EndpointInvocationLinks", "EndpointRecord", "EventView", "EventsAccepted", "Health",
    "InvocationJob", "InvocationRun", "InvocationStarted", "JobLinks", "JobLogsView", "JobRecord",
    "JobSubmitted", "JobSummary", "JobView", "LedgerEntry", "MiniBatchView", "OutputRowsPage",
    "PipelineInfo", "QualityReport", "RunDetail", "RunLinks", "RunStarted", "RunView",
    "RunWithJob", "StreamPartition", "StreamRecord", "StreamStatus", "StreamView", "TokenCreated",
    "TokenRecord", "TokenRevoked", "TriggerDetail", "TriggerRecord", "TriggerRunRef",
    "TriggerView", "Uploaded",
]


class Answer(BaseModel):
    """The base of every answer: exactly its fields."""

    model_config = ConfigDict(extra="forbid")


def record_model(name: str, record: type, doc: str | None = None, *,
                 skip: tuple[str, ...] = (), **fields: Any) -> type[Answer]:
    """The answer ``name`` that sends the dataclass ``record``'s fields, in its order and with
    its types (every one required: the service always sends them), less ``skip``. ``fields``
    (``name=(type, default or Field)``) replace a field of the record in its place, or follow
    the record's fields in their order."""
    hints = get_type_hints(record)
    definitions: dict[str, Any] = {
        f.name: fields.pop(f.name, (hints[f.name], ...))
        for f in dataclasses.fields(record) if f.name not in skip}
    return create_model(name, __base__=Answer, __doc__=doc, __module__=__name__,
                        **definitions, **fields)


# --- service ---------------------------------------------------------------------------------


class Health(Answer):
    status: str
    uptime_s: float
    run_slots: int
    runs_active: int


# --- jobs ------------------------------------------------------------------------------------


JobRecord = record_model(
    "JobRecord", Job, "A job as API clients see it: data-store paths relative, system-store "
    "ones ``system:...``, passwords and environment values hidden.",
    display_state=(str, Field(description="The state, or interrupted for a running job whose "
                              "runner stopped renewing its lease.")))

class JobView(JobRecord):  # type: ignore[misc,valid-type]
    items_in_progress: int = Field(description="Items done inside unfinished mini-batches "
                                   "(a video's frames inside its segments).")


JobSummary = create_model(
    "JobSummary", __base__=Answer, __doc__="A job without its spec (lists, runs).",
    **{name: (field.annotation, field) for name, field in JobView.model_fields.items()
       if name != "spec"})


class _SelfLink(Answer):
    self_: str = Field(alias="self")


class JobLinks(_SelfLink):
    minibatches: str
    logs: str
    run: str


class RunLink(Answer):
    run: str


class JobSubmitted(Answer):
    job_id: str | None = Field(description="None while a run plans the job (a connection's "
                                           "query runs in the job, not in the request).")
    run_id: str
    created: bool = Field(description="False: the same submission's unfinished job.")
    script: str = Field(description="The bundle's folder in the system store (system:...).")
    job: JobSummary | None  # type: ignore[valid-type]
    links: JobLinks | RunLink


MiniBatchView = record_model("MiniBatchView", MiniBatch)

class JobLogsView(Answer):
    job_id: str
    overview: dict[str, Any] | None
    events: list[dict[str, Any]]
    errors: str
    timings: list[dict[str, Any]]
    worker_logs: dict[str, str] = Field(description="The tail of each worker's log.")
    frames: list[dict[str, Any]]


class OutputRowsPage(Answer):
    job_id: str
    columns: list[str]
    rows: list[list[Any]] = Field(description="JSON-safe values in columns order.")
    total: int
    offset: int
    truncated: bool = Field(description="More rows follow this page.")


# --- pipelines and runs ----------------------------------------------------------------------


class PipelineInfo(Answer):
    name: str
    summary: str
    role: str = Field(description="The role that starting a run needs.")
    parameters: dict[str, Any] = Field(description="The JSON schema of the parameters.")


RunView = record_model("RunView", Run)

class RunLinks(_SelfLink):
    output: str


class RunStarted(RunView):  # type: ignore[misc,valid-type]
    links: RunLinks


class RunWithJob(RunView):  # type: ignore[misc,valid-type]
    job: JobSummary | None  # type: ignore[valid-type]


class RunDetail(RunWithJob):
    links: RunLinks


class DownloadLink(Answer):
    url: str
    expires: int = Field(description="UNIX seconds.")
    path: str


class QualityReport(BaseModel):
    """A video-style run's quality report (``<output>.quality.json``), as the job wrote it."""

    model_config = ConfigDict(extra="allow")

    version: int
    input: str
    output: str
    video: dict[str, Any]
    settings: dict[str, Any]
    time: dict[str, Any]
    summary: dict[str, Any]
    frames: list[dict[str, Any]]
    notes: list[str]
    measures: dict[str, str]
    sampled_frames: int
    report_seconds: float | None


# --- triggers and tokens ---------------------------------------------------------------------


TriggerRecord = record_model("TriggerRecord", Trigger)

class TriggerRunRef(Answer):
    id: str
    state: str
    input: Any
    created_at: float


class TriggerView(TriggerRecord):  # type: ignore[misc,valid-type]
    last_error: str | None
    last_scan: float | None
    runs: list[TriggerRunRef]


class LedgerEntry(Answer):
    id: int
    trigger_id: str
    path: str
    version: str
    size: int | None
    state: str
    run_id: str | None
    created_at: float


class TriggerDetail(TriggerView):
    ledger: list[LedgerEntry]


class TokenRecord(Answer):
    id: str
    name: str
    role: str
    created_at: float
    last_used_at: float | None
    revoked: bool


class TokenCreated(TokenRecord):
    token: str = Field(description="Shown here once, never again.")


class TokenRevoked(Answer):
    revoked: str


class Uploaded(Answer):
    path: str
    size: int


# --- endpoints, deployments, connections -----------------------------------------------------


EndpointRecord = record_model("EndpointRecord", Endpoint, kind=(str, ...))

class InvocationJob(Answer):
    state: str
    items_total: int
    items_succeeded: int
    items_failed: int


class InvocationRun(RunView):  # type: ignore[misc,valid-type]
    """A run of an endpoint; ``job`` only once the run has a job."""

    job: InvocationJob | None = None


class EndpointDetail(EndpointRecord):  # type: ignore[misc,valid-type]
    invocations: list[InvocationRun]


class EndpointInvocationLinks(Answer):
    endpoint: str
    job: str | None
    run: str
    logs: str | None


class InvocationStarted(Answer):
    endpoint: str
    job_id: str | None = Field(description="null while a query input waits for a run slot.")
    run_id: str
    created: bool
    links: EndpointInvocationLinks


DeploymentRecord = record_model("DeploymentRecord", Deployment, kind=(str, ...))

class DeploymentInvocationLinks(Answer):
    job: str
    run: str


class DeploymentInvocationStarted(Answer):
    endpoint: str
    job_id: str
    run_id: str
    created: bool
    links: DeploymentInvocationLinks


ConnectionRecord = record_model("ConnectionRecord", Connection, "A connection: never its URL.",
                                skip=("url",))

# --- events and streams ----------------------------------------------------------------------


EventView = record_model(
    "EventView", Event, id=(int, ...),
    ongoing=(bool, Field(description="An anomaly that has not been resolved.")))

StreamRecord = record_model("StreamRecord", Stream, skip=("lease_token",),
                            events_received=(int, ...), prefix=(str, ...))

class ConsumerStatus(Answer):
    state: str
    error: str | None
    stats: dict[str, Any]


class StreamView(StreamRecord):  # type: ignore[misc,valid-type]
    consumer: ConsumerStatus | None


class StreamPartition(Answer):
    stream: str
    partition_key: str
    partition_end: float
    closed_at: float
    job_id: str | None
    run_id: str | None
    error: str | None


class StreamStatus(StreamRecord):  # type: ignore[misc,valid-type]
    """``length`` and ``pending`` when Redis answers, else ``redis_error``."""

    partitions: list[StreamPartition]
    length: int | None = None
    pending: int | None = None
    redis_error: str | None = None
    consumer: ConsumerStatus | None


class EventsAccepted(Answer):
    stream: str
    accepted: int
    ids: list[str]
