"""Tables of things an admin names (endpoints, connections): what reading them by name has
in common. Each table's writes stay in its one writer module; these only read, and turn a
taken name (the primary key) into the caller's error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.exc import IntegrityError

__all__ = ["get_named", "list_named", "named_write"]


def list_named(engine: Engine, table: Table) -> list[Any]:
    """Every row of ``table``, by name."""
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.name)))


def get_named(engine: Engine, table: Table, name: str, *, what: str, none_yet: str,
              error: type[Exception]) -> Any:
    """The row named ``name``; a missing one is ``error`` naming the others (``what``: the
    thing's noun, ``none_yet``: what to say when there are none)."""
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.name == name)).first()
    if row is None:
        known = [r.name for r in list_named(engine, table)]
        raise error(f"no {what} named {name!r}; {what}s are "
                    f"{', '.join(known) if known else none_yet}")
    return row


@contextmanager
def named_write(engine: Engine, taken: Exception) -> Iterator[Connection]:
    """A transaction on ``engine`` whose write of a taken name (the primary key) raises
    ``taken`` instead."""
    try:
        with engine.begin() as conn:
            yield conn
    except IntegrityError:
        raise taken from None
