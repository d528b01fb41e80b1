"""Opening the state database, and keeping its schema current with Alembic migrations.

Opening a current database does not import Alembic (with Mako and the dialects it loads,
0.15-0.2 s of every command here): the revision is read from Alembic's version table and
compared with :data:`SCHEMA_HEAD`; Alembic runs when there is something to upgrade or create.
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path

# Whether engines may exist that the listener below never saw (SQLAlchemy was imported
# before batchscore): found once, on demand, with the garbage collector. Asked before the
# imports below import SQLAlchemy, hence:
# ruff: noqa: E402
_ENGINES_BEFORE = "sqlalchemy" in sys.modules

from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from ..errors import WorkspaceError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = ["SCHEMA_HEAD", "connect", "connected_engines", "create_database"]

_connected: weakref.WeakSet[Engine] = weakref.WeakSet()


@event.listens_for(Engine, "engine_connect")
def _track(conn) -> None:  # type: ignore[no-untyped-def]
    _connected.add(conn.engine)


def connected_engines() -> list[Engine]:
    """Every SQLAlchemy engine of this process that may hold pooled connections: the ones
    that connected since batchscore was imported (the state database's, MLflow's registry
    database's...), tracked as they connect. A forked worker gives each a fresh pool, so
    that it never uses nor closes its parent's connections; finding them this way costs
    nothing, where a scan of every object with the garbage collector cost each worker tens
    of milliseconds. (Engines made before batchscore was imported are found by such a
    scan, once.)"""
    global _ENGINES_BEFORE
    if _ENGINES_BEFORE:
        import gc

        _connected.update(obj for obj in gc.get_objects() if isinstance(obj, Engine))
        _ENGINES_BEFORE = False
    return list(_connected)

_MIGRATIONS = Path(__file__).with_name("migrations")


# The newest migration's revision (``migrations/versions/``): a test checks it against
# Alembic's head, so that a new migration cannot be forgotten here.
SCHEMA_HEAD = "0008"

# Alembic's version table (its default name and column), read without Alembic
_VERSIONS = Table("alembic_version", MetaData(), Column("version_num", String(32)))


def _alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def _revision(conn: Connection) -> str | None:
    """The schema revision the database records, None before any (as Alembic reads it)."""
    if not inspect(conn).has_table(_VERSIONS.name):
        return None
    found = conn.execute(select(_VERSIONS.c.version_num)).scalars().all()
    if len(found) > 1:
        raise WorkspaceError(f"the state database records several schema revisions {found}: "
                             "it was migrated by something other than batchscore")
    return found[0] if found else None


def _engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise WorkspaceError(f"database URL {url!r} cannot be used: {exc}") from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_database(url: str) -> Engine:
    """Create (or upgrade) the database at ``url`` to the current schema."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(url)
    _upgrade(engine, url)
    return engine


def connect(url: str) -> Engine:
    """Open an existing state database, upgrading an older schema; refuse a newer one."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///") :])
        if not path.is_file():
            raise WorkspaceError(
                f"state database {path} does not exist; create the workspace with `batchscore init`"
            )
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            current = _revision(conn)
            has_jobs = inspect(conn).has_table("jobs")
    except OperationalError as exc:
        raise WorkspaceError(f"cannot open state database {_safe(url)}: {exc.orig}") from None
    if current is None and not has_jobs:
        raise WorkspaceError(
            f"{_safe(url)} is not a batchscore state database (no schema); "
            "run `batchscore init` to create one"
        )
    if current != SCHEMA_HEAD:
        _upgrade(engine, url)
    return engine


def _upgrade(engine: Engine, url: str) -> None:
    from alembic import command

    script = _script()
    try:
        with engine.connect() as conn:
            current = _revision(conn)
    except OperationalError as exc:
        raise WorkspaceError(f"cannot open state database {_safe(url)}: {exc.orig}") from None
    if current is not None and current not in {r.revision for r in script.walk_revisions()}:
        raise WorkspaceError(
            f"state database {_safe(url)} has schema revision {current!r}, newer than this "
            f"batchscore understands (up to {SCHEMA_HEAD!r}); upgrade batchscore"
        )
    command.upgrade(_alembic_config(engine), "head")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
