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
)

__all__ = ["attempts", "jobs", "metadata", "minibatches"]

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
    Column("inputs", JSON, nullable=False),
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
    Index("ix_minibatches_state", "job_id", "state"),
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
