"""The answers of the REST API, as pydantic models: the OpenAPI document describes each one.

Each model names exactly the keys the service sends, in the order it sends them (responses
are validated against these models: a key the model does not know fails the request with a
500 instead of vanishing, hence ``extra="forbid"``). A key sent only sometimes has a default
and its route is declared with ``response_model_exclude_unset=True`` so that an absent key
stays absent. Free-form documents (a run's parameters, a job's spec, its logs' events) are
``dict[str, Any]``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

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


# --- service ---------------------------------------------------------------------------------


class Health(Answer):
    status: str
    uptime_s: float
    run_slots: int
    runs_active: int


# --- jobs ------------------------------------------------------------------------------------


class JobRecord(Answer):
    """A job as API clients see it: data-store paths relative, system-store ones
    ``system:...``, passwords and environment values hidden."""

    id: str
    key: str
    kind: str
    name: str
    state: str
    spec: dict[str, Any]
    inputs: list[str]
    output_url: str
    overwrite: bool
    reason: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    runner: str | None
    heartbeat_at: float | None
    cancel_requested: bool
    minibatches_total: int
    items_total: int
    items_succeeded: int
    items_failed: int
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


class MiniBatchView(Answer):
    job_id: str
    idx: int
    items: list[Any]
    n_items: int
    state: str
    attempts: int
    part: str | None
    items_succeeded: int
    items_failed: int
    worker: str | None
    started_at: float | None
    finished_at: float | None
    error: str | None


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


class RunView(Answer):
    id: str
    pipeline: str
    params: dict[str, Any]
    state: str
    run_key: str | None
    trigger_id: str | None
    job_id: str | None
    output_url: str | None
    reason: str | None
    created_by: str | None
    runner: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


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


class TriggerRecord(Answer):
    id: str
    name: str
    kind: str
    pipeline: str
    params: dict[str, Any]
    prefix: str | None
    pattern: str | None
    output: str | None
    marker: str | None
    settle_seconds: float
    cron: str | None
    cursor: float | None
    enabled: bool
    created_at: float


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


class EndpointRecord(Answer):
    name: str
    spec: dict[str, Any]
    model: str | None
    description: str | None
    created_by: str | None
    created_at: float
    updated_at: float
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


class DeploymentRecord(Answer):
    endpoint: str
    name: str
    spec: dict[str, Any]
    model: str | None
    description: str | None
    created_by: str | None
    created_at: float
    updated_at: float
    is_default: bool
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


class ConnectionRecord(Answer):
    """A connection: never its URL."""

    name: str
    dialect: str
    statement_timeout: float
    max_rows: int
    allow_output: bool
    description: str | None
    created_by: str | None
    created_at: float


# --- events and streams ----------------------------------------------------------------------


class EventView(Answer):
    source: str
    kind: str
    severity: str
    state: str
    subject: str
    message: str
    details: dict[str, Any]
    created_at: float
    id: int
    ongoing: bool = Field(description="An anomaly that has not been resolved.")


class StreamRecord(Answer):
    name: str
    window_s: int
    lateness_s: float
    aggregates: list[str]
    max_future_s: float
    redis_url: str | None
    redis_key: str
    partition_by: str
    endpoint: str | None
    endpoint_output: str | None
    created_by: str | None
    created_at: float
    watermark: float | None
    max_event_time: float | None
    events_landed: int
    windows_landed: int
    events_late: int
    events_rejected: int
    partitions_closed: int
    last_landed_at: float | None
    lease_owner: str | None
    lease_until: float | None
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
