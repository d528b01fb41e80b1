"""The answers of the REST API (``/api/v1``), as pydantic models: the service declares them
(the OpenAPI document describes each one) and the client (:mod:`batchscore.client`) returns them.

Each model names exactly the keys the service sends, in the order it sends them (responses
are validated against these models: a key the model does not know fails the request with a
500 instead of vanishing, hence ``extra="forbid"``). A key sent only sometimes has a default
and its route is declared with ``response_model_exclude_unset=True`` so that an absent key
stays absent. Free-form documents (a run's parameters, a job's spec, its logs' events) are
``dict[str, Any]``.

An answer that sends a record (a job, a run, a trigger...) takes its fields from the record's
dataclass (``class JobRecord(fields_of(Job))``, see :func:`fields_of`): names, types and order
are written once, in the dataclass; the answer adds what the record computes (a job's
``display_state``) after them."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_type_hints

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
    "Cluster",
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


def fields_of(record: type, *, skip: tuple[str, ...] = ()) -> type[Answer]:
    """An answer with the dataclass ``record``'s fields, in its order and with its types, less
    ``skip``; every one required (the service always sends them). Answers derive from it: a
    field they declare again keeps its place, a new one follows."""
    hints = get_type_hints(record)
    definitions: Any = {f.name: (hints[f.name], ...) for f in dataclasses.fields(record)
                        if f.name not in skip}
    return create_model(  # type: ignore[call-overload]
        f"{record.__name__}Fields", __base__=Answer, __module__=__name__, **definitions)


# --- service ---------------------------------------------------------------------------------


class Health(Answer):
    status: str
    uptime_s: float
    run_slots: int
    runs_active: int


# --- jobs ------------------------------------------------------------------------------------


class JobRecord(fields_of(Job)):  # type: ignore[misc]
    """A job as API clients see it: data-store paths relative, system-store ones
    ``system:...``, passwords and environment values hidden."""

    display_state: str = Field(description="The state, or interrupted for a running job whose "
                               "runner stopped renewing its lease.")


class JobView(JobRecord):
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


class MiniBatchView(fields_of(MiniBatch)):  # type: ignore[misc]
    pass


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


class RunView(fields_of(Run)):  # type: ignore[misc]
    pass


class RunLinks(_SelfLink):
    output: str


class RunStarted(RunView):
    links: RunLinks


class RunWithJob(RunView):
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


class TriggerRecord(fields_of(Trigger)):  # type: ignore[misc]
    pass


class TriggerRunRef(Answer):
    id: str
    state: str
    input: Any
    created_at: float


class TriggerView(TriggerRecord):
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


class EndpointRecord(fields_of(Endpoint)):  # type: ignore[misc]
    kind: str


class InvocationJob(Answer):
    state: str
    items_total: int
    items_succeeded: int
    items_failed: int


class InvocationRun(RunView):
    """A run of an endpoint; ``job`` only once the run has a job."""

    job: InvocationJob | None = None


class EndpointDetail(EndpointRecord):
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


class DeploymentRecord(fields_of(Deployment)):  # type: ignore[misc]
    kind: str


class DeploymentInvocationLinks(Answer):
    job: str
    run: str


class DeploymentInvocationStarted(Answer):
    endpoint: str
    job_id: str
    run_id: str
    created: bool
    links: DeploymentInvocationLinks


class ConnectionRecord(fields_of(Connection, skip=("url",))):  # type: ignore[misc]
    """A connection: never its URL."""


# --- events and streams ----------------------------------------------------------------------


class EventView(fields_of(Event)):  # type: ignore[misc]
    id: int  # stored: it has one
    ongoing: bool = Field(description="An anomaly that has not been resolved.")


class StreamRecord(fields_of(Stream, skip=("lease_token",))):  # type: ignore[misc]
    events_received: int
    prefix: str


class ConsumerStatus(Answer):
    state: str
    error: str | None
    stats: dict[str, Any]


class StreamView(StreamRecord):
    consumer: ConsumerStatus | None


class StreamPartition(Answer):
    stream: str
    partition_key: str
    partition_end: float
    closed_at: float
    job_id: str | None
    run_id: str | None
    error: str | None


class StreamStatus(StreamRecord):
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


# --- the machines (GET /cluster) --------------------------------------------------------

class Resources(BaseModel):
    cpus: float = Field(description="Logical CPUs the node offers to Ray.")
    gpus: float = Field(description="GPUs the node offers to Ray.")
    memory_bytes: int = Field(description="Memory Ray may give tasks and actors, in bytes.")


class NodeWorker(BaseModel):
    worker: str = Field(description="host:pid, as the attempts table names it.")
    state: Literal["alive", "dead"]
    job_id: str | None = Field(description="The latest job it scored a mini-batch of.")
    minibatches_done: int = Field(description="Mini-batches of that job it scored.")


class Rerun(BaseModel):
    job_id: str
    minibatch: int | None
    worker: str = Field(description="The worker on the node whose mini-batch was run again.")
    attempt: int | None = Field(description="The attempt that died (none when requeued).")
    how: Literal["died", "requeued"] = Field(
        description="died: an attempt counted; requeued: run again uncounted.")


class Node(BaseModel):
    node_id: str
    address: str
    hostname: str
    state: Literal["alive", "dead", "lost"] = Field(
        description="lost: it died while its workers had mini-batches in flight.")
    head: bool
    resources: Resources
    workers: list[NodeWorker]
    reruns: list[Rerun] = Field(description="Mini-batches run again because the node died.")


class LocalWorker(BaseModel):
    worker: str | None = Field(description="host:pid of the worker process.")
    runner: str | None = Field(description="host:pid of the job's runner.")
    job_id: str
    state: str = Field(description="The process state (running, sleeping, zombie...); "
                       "elsewhere: the runner is on another machine; runner-gone.")
    pid: int | None


class Cluster(BaseModel):
    executor: str = Field(description="local or ray.")
    address: str | None = Field(description="executor.ray_address (Ray).")
    nodes: list[Node] = Field(description="Ray's nodes, alive first.")
    workers: list[LocalWorker] = Field(description="The local executor's worker processes.")
    note: str | None = None
