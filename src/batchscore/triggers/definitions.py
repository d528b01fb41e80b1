"""Triggers as durable rows: storage triggers (a new blob starts a run) and schedules (cron).

The one module that writes ``triggers``; what a storage trigger has seen is its ledger
(:mod:`.ledger`)."""

from __future__ import annotations

import fnmatch
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from ..errors import SpecError, TriggerNotFoundError
from ..pipelines import get_pipeline, resolve_data_path, validate_params
from ..state.tables import triggers
from ..workspace import Workspace
from . import blob_ledger as ledgers
from .blobs import list_blobs

__all__ = [
    "Trigger",
    "TriggerNotFoundError",
    "create_trigger",
    "get_trigger",
    "list_triggers",
    "move_cursor",
    "remove_trigger",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Trigger:
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

    def matches(self, rel: str) -> bool:
        """True when ``rel`` (a data store path) is a blob this storage trigger watches."""
        prefix = self.prefix or ""
        if not rel.startswith(prefix):
            return False
        name = rel[len(prefix):].lstrip("/")
        if not name or any(part.startswith(".") for part in name.split("/")):
            return False
        if name.endswith(".partial") or ".tmp-" in name:
            return False
        return fnmatch.fnmatchcase(name, self.pattern or "*")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _trigger(row: Any) -> Trigger:
    return Trigger(**{k: row._mapping[k] for k in Trigger.__dataclass_fields__})


def create_trigger(
    ws: Workspace,
    name: str,
    pipeline: str,
    *,
    params: dict[str, Any] | None = None,
    prefix: str | None = None,
    pattern: str = "*",
    output: str | None = None,
    marker: str | None = None,
    settle_seconds: float = 2.0,
    cron: str | None = None,
    process_existing: bool = False,
) -> Trigger:
    """Record a trigger. A storage trigger (``prefix``) notes every blob already there in its
    ledger, so that only new ones start runs (unless ``process_existing``); a schedule
    (``cron``) starts a run at each tick from now on."""
    if not _NAME.match(name):
        raise SpecError(f"trigger name {name!r} must be 1-100 letters, digits, '_', '.' or '-'")
    definition = get_pipeline(pipeline)
    params = dict(params or {})
    if (prefix is None) == (cron is None):
        raise SpecError("a trigger needs either a store prefix (storage) or a cron expression "
                        "(schedule), not both")
    if settle_seconds < 0:
        raise SpecError(f"settle_seconds must be 0 or more, got {settle_seconds}")
    if cron is not None:
        from croniter import croniter

        if not croniter.is_valid(cron):
            raise SpecError(f"cron expression {cron!r} is not valid (five fields, such as "
                            "'*/15 * * * *')")
        validate_params(ws, pipeline, params)
        kind = "schedule"
    else:
        assert prefix is not None
        prefix = resolve_data_path(ws, prefix, "prefix")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if output is None:
            raise SpecError("a storage trigger needs an output folder (--output outgoing/)")
        output = resolve_data_path(ws, output, "output")
        if not output.endswith("/"):
            output += "/"
        if output.startswith(prefix) or prefix.startswith(output):
            raise SpecError(f"output {output!r} and prefix {prefix!r} overlap: outputs would "
                            "trigger runs themselves")
        probe = definition.sample_input
        validate_params(ws, pipeline, {**params, "input": f"{prefix}{probe}", "output": output})
        kind = "storage"
    now = time.time()
    trigger = Trigger(
        id=uuid.uuid4().hex[:16], name=name, kind=kind, pipeline=pipeline, params=params,
        prefix=prefix, pattern=pattern if kind == "storage" else None, output=output,
        marker=marker, settle_seconds=float(settle_seconds), cron=cron,
        cursor=now if kind == "schedule" else None, enabled=True, created_at=now,
    )
    existing = [] if kind != "storage" or process_existing else [
        b for b in list_blobs(ws, prefix or "") if trigger.matches(b.path)]
    with ws.engine.begin() as conn:
        if conn.execute(select(triggers.c.id).where(triggers.c.name == name)).first():
            raise SpecError(f"a trigger named {name!r} exists already; remove it first")
        conn.execute(insert(triggers).values(**trigger.to_dict()))
        ledgers.record_baseline(conn, trigger.id, existing, now)
    return trigger


def get_trigger(engine: Engine, name_or_id: str) -> Trigger:
    with engine.connect() as conn:
        row = conn.execute(select(triggers).where(
            (triggers.c.name == name_or_id) | (triggers.c.id == name_or_id))).first()
    if row is None:
        raise TriggerNotFoundError(f"no trigger named {name_or_id!r}; "
                                   "`batchscore trigger list` shows them")
    return _trigger(row)


def list_triggers(engine: Engine) -> list[Trigger]:
    with engine.connect() as conn:
        return [_trigger(r) for r in conn.execute(select(triggers).order_by(triggers.c.name))]


def remove_trigger(ws: Workspace, name_or_id: str) -> Trigger:
    """Remove a trigger and its ledger; the runs it started stay."""
    trigger = get_trigger(ws.engine, name_or_id)
    with ws.engine.begin() as conn:
        ledgers.forget(conn, trigger.id)
        conn.execute(delete(triggers).where(triggers.c.id == trigger.id))
    return trigger


def move_cursor(conn: Connection, trigger_id: str, tick: float) -> None:
    """Note that a schedule has started the run of ``tick`` (inside the caller's transaction)."""
    conn.execute(update(triggers).where(triggers.c.id == trigger_id).values(cursor=tick))
