"""The state database: jobs, mini-batches and attempts (SQLite by default, PostgreSQL too).

The tables are in :mod:`.tables`; ``batchscore.state.jobs`` is the module that writes jobs (a
table of the same name exported here would shadow it, depending on the import order)."""

from .db import SCHEMA_HEAD, connect, create_database

__all__ = [
    "SCHEMA_HEAD",
    "connect",
    "create_database",
]
