"""The state database: jobs, mini-batches and attempts (SQLite by default, PostgreSQL too)."""

from .db import SCHEMA_HEAD, connect, create_database
from .tables import attempts, jobs, metadata, minibatches

__all__ = [
    "SCHEMA_HEAD",
    "attempts",
    "connect",
    "create_database",
    "jobs",
    "metadata",
    "minibatches",
]
