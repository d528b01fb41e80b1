"""Stream definitions as durable rows of the state database, with their progress counters.

This module is the one writer of the stream tables (``streams``, ``stream_landings``,
``stream_partitions``): the lease and the lander call its functions inside their own
transactions (they pass the connection), so that what commits together still does.

A stream names its window length, allowed lateness, aggregates, how far in the future an
event may lie, its Redis stream (URL and key; the URL defaults to the workspace's), how its
windows are partitioned in the data store (by hour or day), and optionally a batch endpoint
invoked once for each partition that closes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, delete, insert, select, update

from ..errors import SpecError
from ..redact import hide_userinfo as safe_url
from ..state.tables import endpoints, stream_landings, stream_partitions, streams
from ..workspace import Workspace
from .errors import StreamNotFoundError
from .windows import check_aggregates

__all__ = [
    "DEFAULT_AGGREGATES",
    "PARTITIONS",
    "REDIS_ENV",
    "Intent",
    "Stream",
    "commit_landing",
    "create_stream",
    "default_redis_url",
    "delete_stream",
    "drop_intents",
    "get_stream",
    "list_partitions",
    "list_streams",
    "parse_duration",
    "record_intents",
    "record_partition_closed",
    "redis_url_of",
    "release_lease",
    "renew_lease",
    "take_lease",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PARTITIONS = {"hour": 3600, "day": 86400}
DEFAULT_AGGREGATES = ("count", "mean", "min", "max")
REDIS_ENV = "BATCHSCORE_REDIS_URL"


@dataclass(frozen=True)
class Stream:
    """A stream's definition and its progress (counters committed with each landing)."""

    name: str
    window_s: int
    lateness_s: float
    aggregates: list[str]
    max_future_s: float
    redis_url: str | None
    redis_key: str
    partition_by: str
    endpoint: str | None
    endpoint_output: str | None
    created_by: str | None
    created_at: float
    watermark: float | None
    max_event_time: float | None
    events_landed: int
    windows_landed: int
    events_late: int
    events_rejected: int
    partitions_closed: int
    last_landed_at: float | None
    lease_owner: str | None
    lease_token: str | None
    lease_until: float | None

    @property
    def events_received(self) -> int:
        """Events taken off the log for good: in landed windows, kept aside late, or rejected."""
        return self.events_landed + self.events_late + self.events_rejected

    @property
    def prefix(self) -> str:
        """Where the stream lands in the data store."""
        return f"streams/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.pop("lease_token")
        if self.redis_url:
            data["redis_url"] = safe_url(self.redis_url)  # no password in what people see
        data["events_received"] = self.events_received
        data["prefix"] = self.prefix
        return data


def _stream(row: Any) -> Stream:
    return Stream(**{f.name: row._mapping[f.name] for f in fields(Stream)})


def parse_duration(value: str | float | int, what: str) -> float:
    """Seconds from ``60``, ``60s``, ``5min``, ``1h``, ``1d`` (pandas' Timedelta forms)."""
    if isinstance(value, bool):
        raise SpecError(f"{what} must be a duration such as 60s, 5min or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)  # a plain number is seconds, not pandas' nanoseconds
        except ValueError:
            try:
                seconds = pd.Timedelta(text).total_seconds()
            except (ValueError, TypeError):
                raise SpecError(f"{what} must be a duration such as 60s, 5min or 1h, "
                                f"got {value!r}") from None
    if seconds != seconds or seconds < 0:
        raise SpecError(f"{what} must be 0 or more seconds, got {value!r}")
    return seconds


def default_redis_url(ws: Workspace) -> str | None:
    """The workspace's Redis: ``$BATCHSCORE_REDIS_URL``, else a ``redis_url`` setting."""
    return os.environ.get(REDIS_ENV) or getattr(ws.settings, "redis_url", None) or None


def redis_url_of(ws: Workspace, stream: Stream) -> str:
    """The Redis URL ``stream`` uses; SpecError when it has none and the workspace neither."""
    url = stream.redis_url or default_redis_url(ws)
    if not url:
        raise SpecError(f"stream {stream.name!r} has no Redis URL and the workspace no default; "
                        f"set {REDIS_ENV} or create the stream with --redis redis://HOST:6379/0")
    return url


def create_stream(
    ws: Workspace,
    name: str,
    *,
    window: str | float = "60s",
    lateness: str | float = "30s",
    aggregates: Sequence[str] = DEFAULT_AGGREGATES,
    max_future: str | float = "1h",
    redis_url: str | None = None,
    redis_key: str | None = None,
    partition: str = "hour",
    endpoint: str | None = None,
    endpoint_output: str | None = None,
    created_by: str | None = None,
) -> Stream:
    """Record a stream and create its consumer group in Redis (at the end of the Redis stream:
    entries already in it are not this stream's). Everything is checked before anything is
    recorded: names, durations, aggregates, the endpoint, and that Redis answers."""
    from ..pipelines.datastore import resolve_data_path
    from .redis_source import connect_redis, ensure_group

    if not _NAME.match(name):
        raise SpecError(f"stream name {name!r} must be 1-100 letters, digits, '_', '.' or '-'")
    window_s = parse_duration(window, "window")
    if window_s < 1 or window_s != int(window_s):
        raise SpecError(f"window must be a whole number of seconds from 1s, got {window!r}")
    if partition not in PARTITIONS:
        raise SpecError(f"partition must be one of {', '.join(PARTITIONS)}, got {partition!r}")
    if PARTITIONS[partition] % int(window_s):
        raise SpecError(f"window {window!r} ({window_s:g}s) does not divide a {partition} "
                        f"({PARTITIONS[partition]}s): windows would straddle partitions")
    lateness_s = parse_duration(lateness, "lateness")
    max_future_s = parse_duration(max_future, "max_future")
    aggs = check_aggregates(aggregates)
    if (endpoint is None) != (endpoint_output is None):
        raise SpecError("an endpoint needs an output and an output needs an endpoint: give both "
                        "--endpoint NAME and --endpoint-output PREFIX, or neither")
    if endpoint_output is not None:
        endpoint_output = resolve_data_path(ws, endpoint_output, "endpoint output").rstrip("/")
        if not endpoint_output or endpoint_output.split("/")[0] == "streams":
            raise SpecError(f"endpoint output {endpoint_output!r} must be a folder of the data "
                            "store outside streams/")
    if endpoint is not None:
        with ws.engine.connect() as conn:
            if conn.execute(select(endpoints.c.name).where(endpoints.c.name == endpoint)
                            ).first() is None:
                raise SpecError(f"no endpoint named {endpoint!r}; create it first "
                                "(batchscore endpoint create)")
    key = redis_key or f"batchscore:stream:{name}"
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SpecError(f"Redis URL {redis_url!r} must start with redis://, rediss:// or unix://")
    with ws.engine.connect() as conn:
        if conn.execute(select(streams.c.name).where(streams.c.name == name)).first():
            raise SpecError(f"a stream named {name!r} exists already; delete it first")
    now = time.time()
    values: dict[str, Any] = dict(
        name=name, window_s=int(window_s), lateness_s=lateness_s, aggregates=aggs,
        max_future_s=max_future_s, redis_url=redis_url, redis_key=key, partition_by=partition,
        endpoint=endpoint, endpoint_output=endpoint_output, created_by=created_by,
        created_at=now, watermark=None, max_event_time=None, events_landed=0,
        windows_landed=0, events_late=0, events_rejected=0, partitions_closed=0,
        last_landed_at=None, lease_owner=None, lease_token=None, lease_until=None)
    stream = Stream(**values)
    client = connect_redis(redis_url_of(ws, stream))
    try:
        ensure_group(client, key, start="$")
    finally:
        client.close()
    with ws.engine.begin() as conn:
        conn.execute(insert(streams).values(**values))
    return stream


def get_stream(ws: Workspace, name: str) -> Stream:
    with ws.engine.connect() as conn:
        row = conn.execute(select(streams).where(streams.c.name == name)).first()
    if row is None:
        raise StreamNotFoundError(f"no stream named {name!r}; `batchscore stream list` shows "
                                  "them")
    return _stream(row)


def list_streams(ws: Workspace) -> list[Stream]:
    with ws.engine.connect() as conn:
        return [_stream(r) for r in conn.execute(select(streams).order_by(streams.c.name))]


def list_partitions(ws: Workspace, name: str, limit: int = 100) -> list[dict[str, Any]]:
    """The stream's closed partitions, newest first, with the endpoint's job for each."""
    query = (select(stream_partitions).where(stream_partitions.c.stream == name)
             .order_by(stream_partitions.c.partition_end.desc()).limit(limit))
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def delete_stream(ws: Workspace, name: str, *, purge: bool = False) -> Stream:
    """Remove a stream's definition and ledger, and its consumer group in Redis. What landed
    in the data store, and the Redis stream's entries, stay unless ``purge``."""
    from .redis_source import connect_redis, destroy

    stream = get_stream(ws, name)
    url = stream.redis_url or default_redis_url(ws)
    if url:
        client = connect_redis(url)
        try:
            destroy(client, stream.redis_key, purge=purge)
        finally:
            client.close()
    with ws.engine.begin() as conn:
        conn.execute(delete(stream_partitions).where(stream_partitions.c.stream == name))
        conn.execute(delete(stream_landings).where(stream_landings.c.stream == name))
        conn.execute(delete(streams).where(streams.c.name == name))
    if purge:
        ws.data.remove(stream.prefix, recursive=True)
    return stream


# --- the lease (streaming.lease decides; these write) ---------------------------------------


def _same_holder(token: str | None) -> ColumnElement[bool]:
    """Compare-and-set: the row still has the holder we judged."""
    return streams.c.lease_token.is_(None) if token is None else streams.c.lease_token == token


def take_lease(conn: Connection, name: str, judged_token: str | None, *, owner: str,
               token: str, until: float) -> bool:
    """Give stream ``name``'s lease to ``owner``/``token`` until ``until``, if its holder is
    still the one judged free (``judged_token``); False when another took it meanwhile."""
    taken = conn.execute(update(streams).where(streams.c.name == name,
                                               _same_holder(judged_token))
                         .values(lease_owner=owner, lease_token=token, lease_until=until))
    return taken.rowcount == 1


def renew_lease(conn: Connection, name: str, token: str, until: float) -> bool:
    """Extend the lease that ``token`` holds to ``until``; False when it holds it no more."""
    renewed = conn.execute(update(streams)
                           .where(streams.c.name == name, streams.c.lease_token == token)
                           .values(lease_until=until))
    return renewed.rowcount == 1


def release_lease(conn: Connection, name: str, token: str) -> None:
    """Free the lease if ``token`` still holds it."""
    conn.execute(update(streams).where(streams.c.name == name, streams.c.lease_token == token)
                 .values(lease_owner=None, lease_token=None, lease_until=None))


# --- the landing ledger (streaming.landing writes files; these record them) -----------------


@dataclass(frozen=True)
class Intent:
    """One file about to be written: a ledger row in state ``writing``."""

    kind: str  # window, late or rejected
    path: str
    raw_path: str | None
    window_start: float | None
    partition: str | None
    partition_end: float | None
    events: int
    rows: int
    first_entry: str
    last_entry: str


def record_intents(conn: Connection, stream: str, intents: Sequence[Intent],
                   now: float) -> list[int]:
    """Insert the ledger rows of ``intents`` as ``writing``; their ids, in order."""
    ids = []
    for item in intents:
        result = conn.execute(insert(stream_landings).values(
            stream=stream, kind=item.kind, state="writing", window_start=item.window_start,
            partition_key=item.partition, partition_end=item.partition_end, path=item.path,
            raw_path=item.raw_path, events=item.events, rows=item.rows,
            first_entry=item.first_entry, last_entry=item.last_entry, created_at=now))
        key = result.inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def drop_intents(conn: Connection, ids: Sequence[int]) -> None:
    """Delete the ledger rows ``ids`` that are still ``writing`` (a dead consumer's)."""
    conn.execute(stream_landings.delete().where(stream_landings.c.id.in_(list(ids)),
                                                stream_landings.c.state == "writing"))


def commit_landing(conn: Connection, stream: str, ids: Sequence[int], *,
                   watermark: float | None, max_event_time: float | None,
                   counts: dict[str, int] | None) -> None:
    """Mark the ledger rows ``ids`` ``landed`` and move the stream's watermark; with
    ``counts`` (events_landed, windows_landed, events_late, events_rejected: what this step
    landed), add them to the stream's counters and stamp ``last_landed_at``."""
    if ids:
        conn.execute(update(stream_landings).where(stream_landings.c.id.in_(list(ids)))
                     .values(state="landed"))
    changes: dict[str, Any] = {"watermark": watermark, "max_event_time": max_event_time}
    if counts is not None:
        changes.update({key: getattr(streams.c, key) + value for key, value in counts.items()})
        changes["last_landed_at"] = time.time()
    conn.execute(update(streams).where(streams.c.name == stream).values(**changes))


def record_partition_closed(conn: Connection, stream: str, partition: str, end: float, *,
                            job_id: str | None, run_id: str | None, error: str | None) -> None:
    """Record ``partition`` as closed (IntegrityError when it was already) and count it."""
    conn.execute(insert(stream_partitions).values(
        stream=stream, partition_key=partition, partition_end=end, closed_at=time.time(),
        job_id=job_id, run_id=run_id, error=error))
    conn.execute(update(streams).where(streams.c.name == stream)
                 .values(partitions_closed=streams.c.partitions_closed + 1))
