"""Sending events to a stream: validated as a whole, then appended to its Redis stream.

HTTP batches (``POST /api/v1/streams/NAME/events``) and files (``batchscore stream send``)
take the same path, so that there is one durable log and one landing path: a batch with any
bad event is refused whole, naming every bad event, and nothing is written.
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ..errors import InputError
from ..redact import hide_userinfo as safe_url
from ..workspace import Workspace
from .errors import StreamUnavailableError
from .events import validate_events
from .redis_source import connect_redis, publish
from .streams import get_stream, redis_url_of

__all__ = ["MAX_BATCH", "Sent", "read_event_file", "send_events"]

MAX_BATCH = 10_000  # events in one batch (one Redis transaction)

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Sent:
    stream: str
    accepted: int
    ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "accepted": self.accepted, "ids": self.ids}


def _client(url: str) -> redis.Redis:
    """A shared client per URL (redis-py clients are thread-safe, with a connection pool)."""
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = connect_redis(url)
        return client


def send_events(ws: Workspace, name: str, raws: list[Any], *, source: str = "batch") -> Sent:
    """Validate every event of ``raws`` and append them to stream ``name`` in one transaction.

    Raises :class:`~batchscore.streaming.EventBatchError` naming every bad event (index, field,
    problem) before anything is written, InputError for an empty or too large batch."""
    if not isinstance(raws, list):
        raise InputError(f"{source}: events must be a list of objects, got "
                         f"{type(raws).__name__}")
    if not raws:
        raise InputError(f"{source}: the batch holds no events")
    if len(raws) > MAX_BATCH:
        raise InputError(f"{source}: {len(raws)} events in one batch; at most {MAX_BATCH} "
                         "(send several batches)")
    stream = get_stream(ws, name)
    events = validate_events(raws, source=source, max_future_s=stream.max_future_s)
    url = redis_url_of(ws, stream)
    try:
        ids = publish(_client(url), stream.redis_key, events)
    except redis.RedisError as exc:
        with _lock:
            _clients.pop(url, None)
        raise StreamUnavailableError(f"stream {name!r}: cannot append to Redis at "
                                     f"{safe_url(url)}: {exc}") from None
    return Sent(name, len(ids), ids)


def read_event_file(path: str | Path) -> list[dict[str, Any]]:
    """The events of a CSV file (with a header) or a JSON Lines file, as raw mappings (they
    are validated when sent). InputError names the file and line of a malformed JSON line."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"event file {str(path)!r} does not exist")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        with file.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    if suffix in (".jsonl", ".ndjson", ".json"):
        return list(_json_lines(file))
    raise InputError(f"event file {str(path)!r}: expected .csv or .jsonl, got {suffix or 'none'!r}")


def _json_lines(file: Path) -> Iterator[dict[str, Any]]:
    with file.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"event file {str(file)!r} line {number}: not JSON: "
                                 f"{exc.msg}") from None
