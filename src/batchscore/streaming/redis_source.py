"""Redis Streams as the durable log of a stream: appending events, and reading them through a
consumer group whose entries are acknowledged only after they have landed.

A consumer reads, in this order: its own pending entries (delivered before it died, never
acknowledged: ``XREADGROUP ... 0``), the pending entries of other consumers that have been idle
long enough (``XAUTOCLAIM``), then new entries (``XREADGROUP ... >``). Acknowledgements are sent
in pipelined chunks.

The consumer reads entries as bytes (:func:`connect_redis` with ``decode=False``) and decodes
each one itself (:func:`decode_fields`): an entry written by anything else with fields that are
not UTF-8 is one bad entry, not a reply that cannot be read. Entries that cannot be decoded or
validated go to the stream's **dead-letter stream** (``KEY:dead-letter``, :func:`ack` with
``dead``): their fields as they came (``field:NAME``), the entry id and the reason, added in
the same ``MULTI``/``EXEC`` transaction that acknowledges them, so each is there exactly once.

:func:`trim_acknowledged` removes from the Redis stream what every consumer group has read
and acknowledged (``XTRIM MINID``): never an entry not yet delivered or still pending.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from ..errors import SpecError
from ..redact import hide_userinfo as safe_url
from .errors import StreamUnavailableError
from .events import Reading

__all__ = [
    "DEAD_LETTER_MAXLEN",
    "GROUP",
    "DeadLetter",
    "Entry",
    "ReadAhead",
    "ack",
    "autoclaim",
    "connect_redis",
    "dead_letter_key",
    "decode_fields",
    "destroy",
    "ensure_group",
    "entry_key",
    "fields_of",
    "publish",
    "raw_reads",
    "read_new",
    "read_own_pending",
    "trim_acknowledged",
]

GROUP = "batchscore"
# (entry id, fields); fields are empty for deleted entries, bytes from a decode=False client,
# and a list of names and values where read raw (:func:`raw_reads`, :func:`fields_of`)
Entry = tuple[str, Any]
DeadLetter = tuple[str, Mapping[Any, Any], str]  # (entry id, fields as they came, reason)
DEAD_LETTER_MAXLEN = 100_000  # about; every dead entry also lands in rejected/ for good
_ACK_CHUNK = 10_000
_SHOWN_BYTES = 60  # of a value that is not UTF-8, in a reason


def connect_redis(url: str, *, decode: bool = True) -> redis.Redis:
    """A client for ``url`` that has answered PING; errors name the URL (password hidden).
    ``decode=False``: replies are bytes (the consumer decodes each entry itself)."""
    try:
        client = redis.Redis.from_url(url, decode_responses=decode, socket_connect_timeout=5,
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


def dead_letter_key(key: str) -> str:
    """The dead-letter stream of the Redis stream ``key``."""
    return f"{key}:dead-letter"


def destroy(client: redis.Redis, key: str, *, purge: bool = False) -> None:
    """Remove the consumer group of ``key`` (and with ``purge`` the Redis stream itself and
    its dead-letter stream)."""
    with contextlib.suppress(redis.ResponseError):  # no such key or group: nothing to remove
        client.xgroup_destroy(key, GROUP)
    if purge:
        client.delete(key, dead_letter_key(key))


def publish(client: redis.Redis, key: str, events: Sequence[Reading]) -> list[str]:
    """Append ``events`` to ``key`` in one MULTI/EXEC transaction (all or none); their ids."""
    if not events:
        return []
    pipe = client.pipeline(transaction=True)
    for event in events:
        pipe.xadd(key, event.to_fields())  # type: ignore[arg-type]
    return [str(i) for i in pipe.execute()]


def _text(value: bytes | str) -> str:
    """An entry id, group name or cursor as text (always ASCII in Redis' replies)."""
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _as_is(response: Any, **options: Any) -> Any:
    return response


def raw_reads(client: redis.Redis) -> redis.Redis:
    """``client``, its ``XREADGROUP`` replies left as Redis sent them (read by
    :func:`read_new` and :func:`read_own_pending` in one pass, without redis-py's generic
    conversion of every entry into a tuple and a dict that the reader copied again)."""
    client.set_response_callback("XREADGROUP", _as_is)
    return client


def _entries(reply: Any) -> list[Entry]:
    """The entries of one stream's ``XREADGROUP`` reply: as Redis sent it (RESP2: a list of
    [key, entries]; RESP3: a map of key to entries; each entry [id, [name, value, ...]], with
    None for the fields of a deleted entry), or as redis-py's own callback made it. Fields
    as Redis sent them stay a list of names and values (see :func:`fields_of`)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3, or redis-py's callback for it
        entries = next(iter(reply.values()))
        if entries and entries[0] and isinstance(entries[0][0], tuple):
            entries = entries[0]  # redis-py's {key: [[(id, {fields}), ...]]}
    else:
        entries = reply[0][1]
    return [(_text(i), fields if fields is not None else {}) for i, fields in entries]


def fields_of(raw: Mapping[Any, Any] | list[Any]) -> dict[Any, Any]:
    """An entry's fields as a mapping (from the list of names and values Redis sends)."""
    if isinstance(raw, list):
        pairs = iter(raw)
        return dict(zip(pairs, pairs, strict=False))
    return dict(raw)


def _shown(value: bytes) -> str:
    text = repr(value[:_SHOWN_BYTES])
    return text + (f" ... ({len(value)} bytes)" if len(value) > _SHOWN_BYTES else "")


def _decoded(value: bytes | str) -> tuple[str, bool]:
    """``value`` as text, and whether it was bytes that are not UTF-8 (then escaped)."""
    if not isinstance(value, bytes):
        return str(value), False
    try:
        return value.decode(), False
    except UnicodeDecodeError:
        return value.decode(errors="backslashreplace"), True


def decode_fields(raw: Mapping[Any, Any]) -> tuple[dict[str, str], str | None]:
    """The fields of an entry as text, and None; or, when a name or a value is not UTF-8,
    the fields with the bad bytes escaped (``\\xff``) and what is wrong, naming the field."""
    try:
        return {(k.decode() if isinstance(k, bytes) else k):
                (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}, None
    except UnicodeDecodeError:
        pass
    fields: dict[str, str] = {}
    problems: list[str] = []
    for key, value in raw.items():
        name, bad_name = _decoded(key)
        if bad_name:
            problems.append(f"a field name is not UTF-8 text: {_shown(key)}")
        fields[name], bad_value = _decoded(value)
        if bad_value:
            problems.append(f"{name}: is not UTF-8 text: {_shown(value)}")
    return fields, "; ".join(problems)


def read_own_pending(client: redis.Redis, key: str, consumer: str, after: str,
                     count: int) -> list[Entry]:
    """The consumer's own pending entries after id ``after`` (``0`` for all), oldest first."""
    return _entries(client.xreadgroup(GROUP, consumer, {key: after}, count=count))


def read_new(client: redis.Redis, key: str, consumer: str, count: int,
             block_ms: int | None) -> list[Entry]:
    """Entries never delivered to any consumer of the group, waiting up to ``block_ms``."""
    return _entries(client.xreadgroup(GROUP, consumer, {key: ">"}, count=count,
                                      block=block_ms))


class ReadAhead:
    """One ``XREADGROUP ... >`` (no blocking) sent now and its reply read later, on a
    connection of its own: Redis prepares the next batch while the consumer lands this one.

    The entries it delivers are pending for the consumer from the moment Redis answers, as
    any read's; if the consumer stops without taking them (:meth:`close`), they stay pending
    and come back as its own pending entries, which the ledger recognises."""

    def __init__(self, client: redis.Redis, key: str, consumer: str, count: int) -> None:
        self._pool = client.connection_pool
        try:
            self._conn: Any = self._pool.get_connection()
        except TypeError:  # redis-py before 5.3 needs the command's name (later ones warn)
            self._conn = self._pool.get_connection("XREADGROUP")
        try:
            self._conn.send_command("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count,
                                    "STREAMS", key, ">")
        except BaseException:
            self.close()
            raise

    def entries(self) -> list[Entry]:
        """The entries Redis delivered (read once)."""
        conn, self._conn = self._conn, None
        try:
            reply = conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._pool.release(conn)
        return _entries(reply)

    def close(self) -> None:
        """Give the connection back unread (it is dropped: its reply never read)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.disconnect()
            self._pool.release(conn)


def autoclaim(client: redis.Redis, key: str, consumer: str, min_idle_ms: int, start: str,
              count: int) -> tuple[str, list[Entry], list[str]]:
    """Claim entries pending for ``min_idle_ms`` with other consumers: (next cursor, entries,
    ids of entries deleted from the stream meanwhile). A cursor of ``0-0`` means done."""
    reply = client.xautoclaim(key, GROUP, consumer, min_idle_ms, start, count=count)
    cursor, entries = _text(reply[0]), reply[1]
    deleted = [_text(i) for i in reply[2]] if len(reply) > 2 else []
    return cursor, [(_text(i), dict(fields or {})) for i, fields in entries], deleted


def _field_name(name: bytes | str) -> bytes:
    return b"field:" + (name if isinstance(name, bytes) else str(name).encode())


def ack(client: redis.Redis, key: str, ids: Iterable[str],
        dead: Sequence[DeadLetter] = ()) -> int:
    """Acknowledge ``ids`` in pipelined chunks; the number acknowledged now.

    ``dead`` (their ids are among ``ids``): entries added to the dead-letter stream, in one
    ``MULTI``/``EXEC`` with the acknowledgements, so that each is there exactly once."""
    todo = list(ids)
    if not todo:
        return 0
    pipe = client.pipeline(transaction=bool(dead))
    now = repr(time.time())
    for entry_id, fields, reason in dead:
        letter: dict[Any, Any] = {b"entry_id": entry_id, b"reason": reason, b"dead_at": now}
        letter.update({_field_name(k): v for k, v in fields.items()})
        pipe.xadd(dead_letter_key(key), letter, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
    for i in range(0, len(todo), _ACK_CHUNK):
        pipe.xack(key, GROUP, *todo[i:i + _ACK_CHUNK])
    return sum(int(n) for n in pipe.execute()[len(dead):])


def _after(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{int(ms)}-{int(seq or 0) + 1}"


def trim_acknowledged(client: redis.Redis, key: str) -> int:
    """Remove from ``key`` the entries that every consumer group has read and acknowledged
    (``XTRIM MINID``, exact); the number removed. What stays: every entry after a group's
    last delivered one, and every entry from a group's oldest pending one on. With no group
    nothing is known to be read, and nothing is removed."""
    groups = client.xinfo_groups(key)
    keep: str | None = None
    for group in groups:
        info = {_text(k): v for k, v in group.items()}
        bound = _after(_text(info["last-delivered-id"]))
        if int(info["pending"]) > 0:
            oldest = client.xpending(key, _text(info["name"]))["min"]
            if oldest is not None:  # None: acknowledged since, by that group's reader
                bound = min(bound, _text(oldest), key=entry_key)
        keep = bound if keep is None else min(keep, bound, key=entry_key)
    if keep is None:
        return 0
    return int(client.xtrim(key, minid=keep, approximate=False))


def entry_key(entry_id: str) -> str:
    """A form of a stream entry id (``ms-seq``) whose text order is the ids' order."""
    ms, _, seq = entry_id.partition("-")
    return f"{int(ms):020d}-{int(seq or 0):020d}"
