"""The trigger ledger: what each storage trigger has seen, one row per blob version (the one
module that writes ``trigger_ledger``). A row is either a ``baseline`` (there when the trigger
was made: never started) or ``started`` (with the run it started, recorded in the same
transaction as the run, under a unique (trigger, path, version): exactly once)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from ..state.tables import trigger_ledger
from .blobs import Blob

__all__ = ["forget", "ledger", "record_baseline", "record_started", "seen"]


def record_baseline(conn: Connection, trigger_id: str, blobs: Iterable[Blob],
                    now: float | None = None) -> None:
    """Note blobs that were there before the trigger (inside the caller's transaction)."""
    now = time.time() if now is None else now
    rows = [{"trigger_id": trigger_id, "path": b.path, "version": b.version, "size": b.size,
             "state": "baseline", "run_id": None, "created_at": now} for b in blobs]
    if rows:
        conn.execute(insert(trigger_ledger), rows)


def record_started(conn: Connection, trigger_id: str, blob: Blob, run_id: str) -> None:
    """Note the run a blob version started (an IntegrityError when it started one already)."""
    conn.execute(insert(trigger_ledger).values(
        trigger_id=trigger_id, path=blob.path, version=blob.version, size=blob.size,
        state="started", run_id=run_id, created_at=time.time()))


def forget(conn: Connection, trigger_id: str) -> None:
    """Remove a trigger's ledger (inside the caller's transaction)."""
    conn.execute(delete(trigger_ledger).where(trigger_ledger.c.trigger_id == trigger_id))


def seen(engine: Engine, trigger_id: str) -> set[tuple[str, str]]:
    """The (path, version) pairs a trigger has noted."""
    with engine.connect() as conn:
        rows = conn.execute(select(trigger_ledger.c.path, trigger_ledger.c.version)
                            .where(trigger_ledger.c.trigger_id == trigger_id))
        return {(r.path, r.version) for r in rows}


def ledger(engine: Engine, trigger_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """What a trigger has seen: one row per blob version (``baseline`` or ``started``)."""
    query = (select(trigger_ledger).where(trigger_ledger.c.trigger_id == trigger_id)
             .order_by(trigger_ledger.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
