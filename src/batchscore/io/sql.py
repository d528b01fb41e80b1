"""SQL inputs and outputs: database URLs, engines, and snapshots of a query's result.

A SQL input's query runs once, at planning; its result is written as Parquet into the system
store under ``snapshots/<sha256>/result.parquet`` (content-addressed,
:func:`batchscore.paths.sql_snapshot`), and mini-batches are row ranges of that snapshot, so a
resumed job reads exactly the rows it planned. A registered connection's limits (read-only,
statement timeout, row cap) are enforced while the query runs.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, SpecError
from ..paths import sql_snapshot
from ..redact import safe_url
from ..storage import Store
from .parquet import conform, unify_schemas

__all__ = [
    "DEFAULT_SQL_ROW_GROUP",
    "check_query",
    "create_db_engine",
    "engine_url",
    "is_database_url",
    "snapshot_query",
]

DEFAULT_SQL_ROW_GROUP = 65536


_DIALECTS = {"sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle"}


def is_database_url(url: str) -> bool:
    """True for a SQLAlchemy database URL (``sqlite:///...``, ``postgresql://...``)."""
    if "://" not in url:
        return False
    scheme = url.split("://", 1)[0].lower()
    return scheme.split("+", 1)[0] in _DIALECTS


def engine_url(url: str) -> str:
    """The URL SQLAlchemy is given: plain ``postgresql://`` (or ``postgres://``) uses the
    installed psycopg 3 driver."""
    scheme, rest = url.split("://", 1)
    if scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def create_db_engine(url: str, what: str = "database") -> Any:
    """A SQLAlchemy engine for ``url``; on SQLite every transaction really begins with
    ``BEGIN`` (Python's sqlite3 would leave ``CREATE TABLE`` outside it)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        engine = create_engine(engine_url(url), pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise InputError(f"{what} {safe_url(url)}: not a usable database URL: "
                         f"{_db_message(exc)}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")
    return engine


def _limit(conn: Any, limits: dict[str, Any]) -> threading.Timer | None:
    """Begin ``conn``'s transaction under a connection's limits: read-only, and a statement
    timeout (PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``statement_timeout``; SQLite:
    ``PRAGMA query_only`` and a progress handler that interrupts the query at the deadline).

    On PostgreSQL the timeout is also kept from this side: a timer cancels the query once the
    whole of it (every fetch) has run that long, since a query could change
    ``statement_timeout`` for the fetches after its first (``set_config``). Returns that timer,
    started (the caller cancels it)."""
    import time

    timeout = float(limits.get("statement_timeout") or 0)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        raw = conn.connection.driver_connection
        if limits.get("read_only", True):
            raw.execute("PRAGMA query_only = ON")
        if timeout > 0:
            deadline = time.monotonic() + timeout
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        conn.begin()
        return None
    if dialect != "postgresql":
        raise InputError(f"a connection's limits cannot be enforced on {dialect} databases")
    conn.begin()
    if limits.get("read_only", True):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    if timeout <= 0:
        return None
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
    timer = threading.Timer(timeout, conn.connection.driver_connection.cancel)
    timer.daemon = True
    timer.start()
    return timer


def snapshot_query(db_url: str, query: str, system: Store, rows_per_group: int,
                   limits: dict[str, Any] | None = None) -> tuple[str, int]:
    """Run ``query`` once and keep its result as Parquet in the system store; returns the
    snapshot's URL and its row count. The same result gives the same snapshot.

    ``limits`` (a registered connection's: ``read_only``, ``statement_timeout`` seconds,
    ``max_rows``) makes the query run in a read-only transaction with that timeout, and fail
    once it returns more than ``max_rows`` rows."""
    from sqlalchemy.exc import SQLAlchemyError

    where = safe_url(db_url)
    if limits and limits.get("connection"):
        where = f"connection {limits['connection']!r}"
    max_rows = int(limits.get("max_rows") or 0) if limits else 0
    engine = create_db_engine(db_url, "SQL input")
    scratch = Path(tempfile.mkdtemp(prefix="batchscore-sql-"))
    try:
        pieces: list[Path] = []
        schemas: list[pa.Schema] = []
        count = 0
        timer = None
        try:
            with engine.connect() as conn:
                if limits:
                    timer = _limit(conn, limits)
                result = conn.execution_options(stream_results=True).exec_driver_sql(query)
                if not result.returns_rows:
                    raise InputError(f"SQL query on {where} returns no rows to score (it is "
                                     f"not a SELECT): {query!r}")
                names = result.keys()
                columns = [str(c) for c in names]
                while True:
                    want = rows_per_group if not max_rows else \
                        max(1, min(rows_per_group, max_rows + 1 - count))
                    rows = result.fetchmany(want)
                    count += len(rows)
                    if max_rows and count > max_rows:
                        raise InputError(
                            f"SQL query on {where} returns more than {max_rows} rows, the "
                            "connection's row cap (max_rows); narrow the query")
                    if not rows and pieces:
                        break
                    chunk = pd.DataFrame.from_records(rows, columns=columns,
                                                      coerce_float=True)
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    piece = scratch / f"piece-{len(pieces):06d}.parquet"
                    pq.write_table(table, piece)
                    pieces.append(piece)
                    schemas.append(table.schema)
                    if not rows:
                        break
        except SQLAlchemyError as exc:
            if timer is not None and timer.finished.is_set():
                raise InputError(f"SQL query on {where} ran past the connection's statement "
                                 f"timeout ({limits['statement_timeout']:g}s)") from None
            raise InputError(f"SQL query on {where} failed: {_db_message(exc)}") from None
        finally:
            if timer is not None:
                timer.cancel()
            engine.dispose()
        schema = unify_schemas(schemas)
        final = scratch / "result.parquet"
        total = 0
        with pq.ParquetWriter(final, schema) as writer:
            for piece in pieces:
                table = conform(pq.read_table(piece), schema)
                total += table.num_rows
                writer.write_table(table, row_group_size=rows_per_group)
        digest = hashlib.sha256()
        with open(final, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        rel = sql_snapshot(digest.hexdigest())
        if not system.exists(rel):
            system.put_file(final, rel)
        return system.url_of(rel), total
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_query(query: Any) -> str:
    """``options.query`` as a non-empty string."""
    if not isinstance(query, str) or not query.strip():
        raise SpecError("a SQL input needs options.query (the SELECT to run), "
                        f"got {query!r}")
    return query
