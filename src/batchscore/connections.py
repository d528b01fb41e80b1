"""Database connections: the only databases a caller of the service may name.

An admin registers a connection (``batchscore connection create NAME URL`` or
``POST /api/v1/connections``): a name bound to a database URL and the limits every query
through it runs under. Operators then name it, never a URL: an endpoint's input
``connection:NAME`` with a query, its output ``connection:NAME`` with a table. The URL and
its password stay in the state database; no answer and no listing shows them (a connection
is shown by its name, its dialect and its settings).

Each query through a connection runs inside the job (a run slot plans it, never the HTTP
request), in a **read-only** transaction, with the connection's **statement timeout**, and
fails once it returns more than the connection's **row cap** (:func:`query_limits`, applied
by :func:`batchscore.io.sql.snapshot_query`). An output goes to a connection only
when the admin allowed it (``allow_output``).

The local command line (a user on their own machine) may keep naming database URLs; the REST
API refuses them, and refuses SQLite connections (a SQLite URL names a file of the service's
machine, such as the state database itself).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert

from .errors import ConnectionExistsError, ConnectionNotFoundError, InputError, SpecError
from .state.named import get_named, list_named, named_write
from .state.tables import connections
from .workspace import Workspace

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_STATEMENT_TIMEOUT",
    "PREFIX",
    "Connection",
    "ConnectionExistsError",
    "ConnectionNotFoundError",
    "connection_name",
    "create_connection",
    "delete_connection",
    "get_connection",
    "input_url",
    "is_connection_ref",
    "list_connections",
    "output_url",
    "query_limits",
]

PREFIX = "connection:"
DEFAULT_STATEMENT_TIMEOUT = 60.0  # seconds a query may run
DEFAULT_MAX_ROWS = 1_000_000  # rows a query may return
SUPPORTED = ("postgresql", "sqlite")  # dialects whose read-only and timeout are enforced
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")



@dataclass(frozen=True)
class Connection:
    name: str
    dialect: str
    statement_timeout: float
    max_rows: int
    allow_output: bool
    description: str | None
    created_by: str | None
    created_at: float
    url: str = field(repr=False, default="")  # never shown

    def to_dict(self) -> dict[str, Any]:
        """What anyone may see: everything but the URL."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "url"}


def is_connection_ref(value: str) -> bool:
    """``connection:NAME``: a registered connection."""
    return isinstance(value, str) and value.startswith(PREFIX)


def connection_name(value: str) -> str:
    return value[len(PREFIX):].strip()


def _dialect(url: str) -> str:
    from .io.sql import engine_url, is_database_url
    from .redact import safe_url

    if not is_database_url(url):
        raise SpecError(f"connection URL {safe_url(url)} is not a database URL "
                        "(postgresql://USER:PASSWORD@HOST/DB)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        name = make_url(engine_url(url)).get_backend_name()
    except ArgumentError as exc:
        raise SpecError(f"connection URL {safe_url(url)}: {exc}") from None
    if name not in SUPPORTED:
        raise SpecError(f"connection URL {safe_url(url)}: dialect {name!r} is not supported for "
                        f"connections ({', '.join(SUPPORTED)}: their read-only transactions and "
                        "statement timeouts are enforced)")
    return name


def create_connection(ws: Workspace, name: str, url: str, *,
                      statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
                      max_rows: int = DEFAULT_MAX_ROWS, allow_output: bool = False,
                      description: str | None = None, created_by: str | None = None,
                      allow_sqlite: bool = True) -> Connection:
    """Register connection ``name`` (an admin's act). ``allow_sqlite=False`` (the REST API)
    refuses SQLite: its URL names a file on the service's machine."""
    if not _NAME.match(name or ""):
        raise SpecError(f"connection name {name!r} must be 1-63 characters of lower-case "
                        "letters, digits, '.', '_' or '-', starting with a letter or digit")
    dialect = _dialect(url)
    if dialect == "sqlite" and not allow_sqlite:
        raise SpecError("SQLite connections are refused through the REST API (a SQLite URL "
                        "names a file on the service's machine); register a database server")
    if not statement_timeout > 0:
        raise SpecError(f"statement_timeout must be positive seconds, got {statement_timeout}")
    if max_rows < 1:
        raise SpecError(f"max_rows must be at least 1, got {max_rows}")
    values = dict(name=name, url=url, dialect=dialect, statement_timeout=float(statement_timeout),
                  max_rows=int(max_rows), allow_output=bool(allow_output),
                  description=description, created_by=created_by, created_at=time.time())
    taken = ConnectionExistsError(f"connection {name!r} exists already; delete it first "
                                  f"(batchscore connection delete {name}) or choose another name")
    with named_write(ws.engine, taken) as conn:
        conn.execute(insert(connections).values(**values))
    return Connection(**values)  # type: ignore[arg-type]


def _row(row: Any) -> Connection:
    return Connection(**{k: row._mapping[k] for k in Connection.__dataclass_fields__})


def get_connection(ws: Workspace, name: str) -> Connection:
    return _row(get_named(ws.engine, connections, name, what="connection",
                          none_yet="(none yet: an admin registers them)",
                          error=ConnectionNotFoundError))


def list_connections(ws: Workspace) -> list[Connection]:
    return [_row(r) for r in list_named(ws.engine, connections)]


def delete_connection(ws: Workspace, name: str) -> Connection:
    """Remove connection ``name``; jobs planned through it keep their snapshots."""
    found = get_connection(ws, name)
    with ws.engine.begin() as conn:
        conn.execute(delete(connections).where(connections.c.name == name))
    return found


def query_limits(found: Connection) -> dict[str, Any]:
    """What each query through ``found`` runs under (``options.sql_limits`` of its job)."""
    return {"read_only": True, "statement_timeout": found.statement_timeout,
            "max_rows": found.max_rows, "connection": found.name}


def _named(ws: Workspace, value: str, what: str) -> Connection:
    name = connection_name(value)
    if not name:
        raise InputError(f"{what} {value!r} names no connection (connection:NAME)")
    return get_connection(ws, name)


def input_url(ws: Workspace, value: str) -> tuple[str, dict[str, Any]]:
    """The database URL behind input ``connection:NAME`` and the limits of its query."""
    found = _named(ws, value, "input")
    return found.url, query_limits(found)


def output_url(ws: Workspace, value: str) -> str:
    """The database URL behind output ``connection:NAME``, if the admin allowed outputs."""
    found = _named(ws, value, "output")
    if not found.allow_output:
        raise InputError(f"output {value!r}: connection {found.name!r} takes no outputs (an "
                         "admin allows them with allow_output)")
    return found.url
