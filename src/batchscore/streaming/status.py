"""A stream's status for people: its row, its closed partitions, and what waits in Redis."""

from __future__ import annotations

from typing import Any

import redis

from ..errors import SpecError
from ..workspace import Workspace
from .errors import StreamUnavailableError
from .redis_source import GROUP, connect_redis
from .streams import get_stream, list_partitions, redis_url_of

__all__ = ["stream_status"]


def stream_status(ws: Workspace, name: str, *, redis_info: bool = True) -> dict[str, Any]:
    """Settings and counters of stream ``name``, its latest closed partitions, and (when Redis
    answers) ``length`` (entries in the Redis stream) and ``pending`` (delivered, not yet
    acknowledged: the events of windows still open); else ``redis_error``."""
    stream = get_stream(ws, name)
    status = stream.to_dict()
    status["partitions"] = list_partitions(ws, name, limit=50)
    if redis_info:
        try:
            client = connect_redis(redis_url_of(ws, stream))
            try:
                status["length"] = int(client.xlen(stream.redis_key))
                status["pending"] = int(client.xpending(stream.redis_key, GROUP)["pending"])
            finally:
                client.close()
        except (StreamUnavailableError, SpecError, redis.RedisError) as exc:
            status["redis_error"] = str(exc)
    return status
