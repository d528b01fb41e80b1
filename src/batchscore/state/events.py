"""Events in the state database: anomalies of the online scoring service (and whatever else
deserves a person's attention), listed by the REST API and shown on the dashboard.

An anomaly is a pair of events with the same ``source``, ``subject`` and ``kind``: one with
state ``raised`` when it starts and one with state ``resolved`` when it ends. It is *ongoing*
while the newest event of its (source, subject, kind) is a ``raised`` one. A one-off event
has state ``notice``.

:class:`EventWriter` writes events from a background thread, so that a slow or unreachable
database never blocks the caller (a scoring request): :meth:`EventWriter.put` never waits; a
full queue drops the event and counts it in ``dropped``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select

from ..errors import InputError, SpecError
from .tables import events

__all__ = [
    "MAX_LIMIT",
    "SEVERITIES",
    "STATES",
    "Event",
    "EventWriter",
    "list_events",
    "ongoing_events",
    "parse_since",
    "record_events",
]

SEVERITIES = ("critical", "warning", "info")
STATES = ("raised", "resolved", "notice")
MAX_LIMIT = 1000
log = logging.getLogger("batchscore.events")

_LIMITS = {"source": 64, "kind": 32, "subject": 300}


@dataclass(frozen=True)
class Event:
    """One event; ``id`` is None until it is stored. Bad fields raise :class:`SpecError`."""

    source: str
    kind: str
    severity: str
    state: str
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    id: int | None = None

    def __post_init__(self) -> None:
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > limit:
                raise SpecError(f"event {name} must be 1-{limit} characters, got {value!r}")
        if self.severity not in SEVERITIES:
            raise SpecError(f"event severity must be one of {', '.join(SEVERITIES)}, "
                            f"got {self.severity!r}")
        if self.state not in STATES:
            raise SpecError(f"event state must be one of {', '.join(STATES)}, got {self.state!r}")
        if not isinstance(self.message, str) or not self.message:
            raise SpecError(f"event message must be a non-empty string, got {self.message!r}")
        if not isinstance(self.created_at, int | float) or not math.isfinite(self.created_at):
            raise SpecError(f"event created_at must be UNIX seconds, got {self.created_at!r}")
        if not isinstance(self.details, dict):
            raise SpecError(f"event details must be a JSON object, got "
                            f"{type(self.details).__name__}")
        try:
            json.dumps(self.details, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"event details must be JSON (finite numbers, strings, lists, "
                            f"objects): {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(event: Event) -> dict[str, Any]:
    row = event.to_dict()
    row.pop("id")
    return row


def record_events(engine: Engine, new: Sequence[Event]) -> list[Event]:
    """Store ``new`` in one transaction; returns them with their ids."""
    stored: list[Event] = []
    with engine.begin() as conn:
        for event in new:
            key = conn.execute(insert(events).values(**_row(event))).inserted_primary_key
            assert key is not None
            stored.append(Event(**{**event.to_dict(), "id": int(key[0])}))
    return stored


def _event(row: Any) -> Event:
    return Event(**dict(row._mapping))


def parse_since(value: str | float | None) -> float | None:
    """UNIX seconds from ``value``: a number, or an ISO 8601 time (UTC when it has no zone)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(value)
        except ValueError:
            try:
                stamp = datetime.fromisoformat(value.strip())
            except ValueError:
                raise InputError(f"since must be UNIX seconds or an ISO 8601 time such as "
                                 f"2024-05-01T12:00:00Z, got {value!r}") from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return stamp.timestamp()
    if not math.isfinite(number):
        raise InputError(f"since must be a finite number of UNIX seconds, got {value!r}")
    return number


def list_events(engine: Engine, *, since: float | None = None, kind: str | None = None,
                source: str | None = None, subject: str | None = None,
                limit: int = 100) -> list[Event]:
    """Events, newest first: those created at or after ``since`` (UNIX seconds), of ``kind``,
    from ``source``, about ``subject``; at most ``limit`` (1 to 1000)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    query = select(events)
    if since is not None:
        query = query.where(events.c.created_at >= since)
    for column, value in (("kind", kind), ("source", source), ("subject", subject)):
        if value:
            query = query.where(events.c[column] == value)
    query = query.order_by(events.c.created_at.desc(), events.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_event(row) for row in conn.execute(query)]


def ongoing_events(engine: Engine, *, source: str | None = None) -> list[Event]:
    """The anomalies still going on: for every (source, subject, kind), its newest event if
    that one is ``raised``; most recent first."""
    newest = select(func.max(events.c.id).label("id")).group_by(
        events.c.source, events.c.subject, events.c.kind)
    if source:
        newest = newest.where(events.c.source == source)
    latest = newest.subquery()
    query = (select(events).join(latest, and_(events.c.id == latest.c.id))
             .where(events.c.state == "raised")
             .order_by(events.c.created_at.desc(), events.c.id.desc()))
    with engine.connect() as conn:
        return [_event(row) for row in conn.execute(query)]


_STOP = object()


class EventWriter:
    """Writes events to the state database from a background thread.

    A batch that fails is tried again ``attempts`` times, ``retry_seconds`` apart (doubling),
    then dropped and counted in ``dropped``; the caller never waits for the database."""

    def __init__(self, engine: Engine, *, max_queue: int = 1000, attempts: int = 5,
                 retry_seconds: float = 0.5) -> None:
        self.engine = engine
        self.attempts, self.retry_seconds = max(1, attempts), retry_seconds
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="event-writer", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> bool:
        """Queue ``event`` for writing; False (and counted as dropped) when the queue is full
        or the writer is closed."""
        if self._stopping.is_set():
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued so far is written (or dropped); False on timeout."""
        if not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (one attempt per batch) and stop the thread."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Event] = []
            markers: list[threading.Event] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if len(batch) >= 100:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set()
            if stop:
                return

    def _write(self, batch: list[Event]) -> None:
        delay = self.retry_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                record_events(self.engine, batch)
            except Exception as exc:  # a database that fails must not stop serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                if attempt == self.attempts or self._stopping.is_set():
                    break
                log.warning("cannot write %d event(s) to the state database (attempt %d of "
                            "%d): %s", len(batch), attempt, self.attempts, self.last_error)
                self._stopping.wait(delay)
                delay *= 2
            else:
                self.written += len(batch)
                return
        self.dropped += len(batch)
        log.error("dropped %d event(s) that could not be written to the state database: %s",
                  len(batch), self.last_error)
