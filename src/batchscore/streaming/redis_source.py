"""Redis Streams as the durable log of a stream: appending events, and reading them through a
consumer group whose entries are acknowledged only after they have landed.

A consumer reads, in this order: its own pending entries (delivered before it died, never
acknowledged: ``XREADGROUP ... 0``), the pending entries of other consumers that have been idle
long enough (``XAUTOCLAIM``), then new entries (``XREADGROUP ... >``). Acknowledgements are sent
in pipelined chunks.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from ..errors import SpecError
from .errors import StreamUnavailableError
from .events import Event

__all__ = [
    "GROUP",
    "Entry",
    "ack",
    "autoclaim",
    "connect_redis",
    "destroy",
    "ensure_group",
    "entry_key",
    "publish",
    "read_new",
    "read_own_pending",
    "safe_url",
]

GROUP = "batchscore"
Entry = tuple[str, dict[str, str]]  # (entry id, fields); fields are empty for deleted entries
_ACK_CHUNK = 10_000


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"//[^@/]*@", "//***@", url)


def connect_redis(url: str) -> redis.Redis:
    """A client for ``url`` that has answered PING; errors name the URL (password hidden)."""
    try:
        client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                      socket_timeout=30, health_check_interval=30)
    except ValueError as exc:
        raise SpecError(f"Redis URL {safe_url(url)!r} cannot be used: {exc}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise StreamUnavailableError(f"cannot reach Redis at {safe_url(url)}: {exc}") from None
    return client


def ensure_group(client: redis.Redis, key: str, start: str = "0") -> bool:
    """Create the consumer group of ``key`` (and the stream) unless it exists; True if made.

    ``start`` is where a new group begins: ``$`` (only entries added from now on) when a
    stream is created, ``0`` (everything still in the log) when a consumer finds it missing.
    """
    try:
        client.xgroup_create(key, GROUP, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


def destroy(client: redis.Redis, key: str, *, purge: bool = False) -> None:
    """Remove the consumer group of ``key`` (and with ``purge`` the Redis stream itself)."""
    with contextlib.suppress(redis.ResponseError):  # no such key or group: nothing to remove
        client.xgroup_destroy(key, GROUP)
    if purge:
        client.delete(key)


def publish(client: redis.Redis, key: str, events: Sequence[Event]) -> list[str]:
    """Append ``events`` to ``key`` in one MULTI/EXEC transaction (all or none); their ids."""
    if not events:
        return []
    pipe = client.pipeline(transaction=True)
    for event in events:
        pipe.xadd(key, event.to_fields())  # type: ignore[arg-type]
    return [str(i) for i in pipe.execute()]


def _entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    _key, entries = reply[0]
    return [(str(i), dict(fields or {})) for i, fields in entries]


def read_own_pending(client: redis.Redis, key: str, consumer: str, after: str,
                     count: int) -> list[Entry]:
    """The consumer's own pending entries after id ``after`` (``0`` for all), oldest first."""
    return _entries(client.xreadgroup(GROUP, consumer, {key: after}, count=count))


def read_new(client: redis.Redis, key: str, consumer: str, count: int,
             block_ms: int | None) -> list[Entry]:
    """Entries never delivered to any consumer of the group, waiting up to ``block_ms``."""
    return _entries(client.xreadgroup(GROUP, consumer, {key: ">"}, count=count,
                                      block=block_ms))


def autoclaim(client: redis.Redis, key: str, consumer: str, min_idle_ms: int, start: str,
              count: int) -> tuple[str, list[Entry], list[str]]:
    """Claim entries pending for ``min_idle_ms`` with other consumers: (next cursor, entries,
    ids of entries deleted from the stream meanwhile). A cursor of ``0-0`` means done."""
    reply = client.xautoclaim(key, GROUP, consumer, min_idle_ms, start, count=count)
    cursor, entries = str(reply[0]), reply[1]
    deleted = [str(i) for i in reply[2]] if len(reply) > 2 else []
    return cursor, [(str(i), dict(fields or {})) for i, fields in entries], deleted


def ack(client: redis.Redis, key: str, ids: Iterable[str]) -> int:
    """Acknowledge ``ids`` in pipelined chunks; the number acknowledged now."""
    todo = list(ids)
    if not todo:
        return 0
    pipe = client.pipeline(transaction=False)
    for i in range(0, len(todo), _ACK_CHUNK):
        pipe.xack(key, GROUP, *todo[i:i + _ACK_CHUNK])
    return sum(int(n) for n in pipe.execute())


def entry_key(entry_id: str) -> str:
    """A form of a stream entry id (``ms-seq``) whose text order is the ids' order."""
    ms, _, seq = entry_id.partition("-")
    return f"{int(ms):020d}-{int(seq or 0):020d}"
