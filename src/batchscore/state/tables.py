"""SQLAlchemy Core tables of the state database. Times are UNIX seconds (floats)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "api_tokens",
    "attempts",
    "connections",
    "deployments",
    "endpoints",
    "events",
    "job_inputs",
    "jobs",
    "metadata",
    "minibatches",
    "pipeline_runs",
    "stream_landings",
    "stream_partitions",
    "streams",
    "trigger_ledger",
    "triggers",
]

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    # Idempotency: the same spec, inputs and output give the same key; while a job is not
    # finished, active_key holds the key, and its unique constraint allows one such job.
    Column("key", String(64), nullable=False, index=True),
    Column("active_key", String(64), unique=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),  # [] since revision 0006: see job_inputs
    Column("output_url", Text, nullable=False),
    Column("overwrite", Boolean, nullable=False, default=False),
    Column("reason", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("runner", String(200)),
    Column("heartbeat_at", Float),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("minibatches_total", Integer, nullable=False, default=0),
    Column("items_total", Integer, nullable=False, default=0),
    Column("items_succeeded", Integer, nullable=False, default=0),
    Column("items_failed", Integer, nullable=False, default=0),
)

minibatches = Table(
    "minibatches",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("items", JSON, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("part", Text),
    Column("items_succeeded", Integer, nullable=False, default=0),
    Column("items_failed", Integer, nullable=False, default=0),
    Column("worker", String(200)),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("error", Text),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    # the runner's "next pending mini-batches after idx" and the counts per state
    Index("ix_minibatches_state", "job_id", "state", "idx"),
)

# A job's expanded inputs, in order (``jobs.inputs`` is ``[]`` for jobs recorded since
# revision 0006): a million URLs kept out of the ``jobs`` row, which heartbeats rewrite.
job_inputs = Table(
    "job_inputs",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("pos", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(40), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(200)),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("outcome", String(16), nullable=False),
    Column("items", Integer),
    Column("error", Text),
    ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    Index("ix_attempts_job", "job_id", "idx"),
)

# --- the control plane (service): pipeline runs, triggers and their ledger, API tokens -------

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # queued, running, succeeded, failed, canceled
    # Idempotency: a trigger reserves its run under a key (trigger + blob version, or schedule
    # + tick); the unique constraint allows one run per key, across restarts.
    Column("run_key", String(300), unique=True),
    Column("trigger_id", String(40)),
    Column("job_id", String(40)),
    Column("output_url", Text),
    Column("reason", Text),
    Column("created_by", String(100)),
    Column("runner", String(200)),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Index("ix_pipeline_runs_state", "state"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # storage, schedule
    Column("pipeline", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("prefix", Text),
    Column("pattern", String(200)),
    Column("output", Text),
    Column("marker", String(200)),
    Column("settle_seconds", Float, nullable=False, default=2.0),
    Column("cron", String(100)),
    Column("cursor", Float),  # schedules: the last tick that started a run
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

trigger_ledger = Table(
    "trigger_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger_id", String(40), nullable=False),
    Column("path", Text, nullable=False),
    Column("version", String(200), nullable=False),  # etag, else size:mtime
    Column("size", Integer),
    Column("state", String(16), nullable=False),  # baseline (present at creation), started
    Column("run_id", String(40)),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
    UniqueConstraint("trigger_id", "path", "version", name="uq_trigger_ledger_blob"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # viewer, operator, admin
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the token
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked", Boolean, nullable=False, default=False),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("spec", JSON, nullable=False),  # the JobSpec mapping every invocation starts from
    Column("model", Text),  # the model reference as given (models:/NAME@production, a folder)
    Column("description", Text),
    Column("created_by", String(100)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("default_deployment", String(100)),  # None: no deployments, or one ("default")
)

connections = Table(  # databases an admin registered by name (batchscore.connections)
    "connections",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("url", Text, nullable=False),  # with its password: never shown
    Column("dialect", String(32), nullable=False),
    Column("statement_timeout", Float, nullable=False),
    Column("max_rows", Integer, nullable=False),
    Column("allow_output", Boolean, nullable=False),
    Column("description", Text),
    Column("created_by", String(200)),
    Column("created_at", Float, nullable=False),
)

deployments = Table(  # an endpoint's named deployments (batchscore.endpoints.deployments)
    "deployments",
    metadata,
    Column("endpoint", String(100), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("model", Text),
    Column("description", Text),
    Column("created_by", String(100)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# --- streams: definitions, the ledger of what landed, closed partitions ---------------------

streams = Table(
    "streams",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("window_s", Integer, nullable=False),
    Column("lateness_s", Float, nullable=False),
    Column("aggregates", JSON, nullable=False),
    Column("max_future_s", Float, nullable=False),
    Column("redis_url", Text),  # None: the workspace's default
    Column("redis_key", String(300), nullable=False),
    Column("partition_by", String(8), nullable=False),  # hour, day
    Column("endpoint", String(100)),
    Column("endpoint_output", Text),
    Column("created_by", String(100)),
    Column("created_at", Float, nullable=False),
    # Progress, committed with each landing: the watermark reached, and the counters.
    Column("watermark", Float),
    Column("max_event_time", Float),
    Column("events_landed", Integer, nullable=False, default=0),
    Column("windows_landed", Integer, nullable=False, default=0),
    Column("events_late", Integer, nullable=False, default=0),
    Column("events_rejected", Integer, nullable=False, default=0),
    Column("partitions_closed", Integer, nullable=False, default=0),
    Column("last_landed_at", Float),
    # One consumer at a time: the lease (a live holder renews it; a dead one's is taken over).
    Column("lease_owner", String(200)),
    Column("lease_token", String(40)),
    Column("lease_until", Float),
)

stream_landings = Table(
    "stream_landings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(100), nullable=False),
    Column("kind", String(16), nullable=False),  # window, late, rejected
    Column("state", String(16), nullable=False),  # writing (intent), landed
    Column("window_start", Float),  # windows only: one landing per window, ever
    Column("partition_key", String(64)),  # date=2018-08-28/hour=23
    Column("partition_end", Float),
    Column("path", Text, nullable=False),  # data store path of the file
    Column("raw_path", Text),  # windows: the raw events with their entry ids
    Column("events", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("first_entry", String(48)),  # sortable forms of the lowest and highest entry id
    Column("last_entry", String(48)),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["stream"], ["streams.name"], ondelete="CASCADE"),
    UniqueConstraint("stream", "kind", "window_start", name="uq_stream_landings_window"),
    Index("ix_stream_landings_entries", "stream", "last_entry"),
    Index("ix_stream_landings_partition", "stream", "kind", "partition_key"),
)

stream_partitions = Table(
    "stream_partitions",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("partition_key", String(64), primary_key=True),
    Column("partition_end", Float, nullable=False),
    Column("closed_at", Float, nullable=False),
    Column("job_id", String(40)),  # the endpoint's job for this partition, if any
    Column("run_id", String(40)),
    Column("error", Text),  # why the endpoint could not be invoked
    ForeignKeyConstraint(["stream"], ["streams.name"], ondelete="CASCADE"),
)

# --- events: anomalies and other happenings worth a person's attention (the dashboard) -------

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("source", String(64), nullable=False),  # who raised it: serving, ...
    Column("kind", String(32), nullable=False),  # latency, error_rate, client_error_rate, ...
    Column("severity", String(16), nullable=False),  # critical, warning, info
    Column("state", String(16), nullable=False),  # raised, resolved (an anomaly's two ends)
    Column("subject", String(300), nullable=False),  # what it is about: a model NAME/VERSION
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_events_created", "created_at"),
    Index("ix_events_subject", "source", "subject", "kind"),
)
