"""Streaming sensor events: HTTP and Redis Streams in, tumbling windows out, landed exactly
once as time-partitioned Parquet in the data store; a closed partition can invoke a batch
endpoint.

- :func:`create_stream`, :func:`get_stream`, :func:`list_streams`, :func:`delete_stream`:
  stream definitions in the state database (:mod:`.records`);
- :func:`send_events`: validate a batch of events and append it to the stream's Redis stream
  (:mod:`.ingest`);
- :class:`StreamConsumer` / :func:`consume`: read through the consumer group, window, land,
  acknowledge (:mod:`.consumer`, :mod:`.windows`, :mod:`.landing`);
- :class:`ConsumerPool`: the service's consumer threads (:mod:`.pool`).
"""

from .consumer import ConsumeStats, StreamConsumer, consume, endpoint_hook
from .errors import (
    EventBatchError,
    EventProblem,
    StreamBusyError,
    StreamNotFoundError,
    StreamUnavailableError,
)
from .events import Reading, parse_event, validate_events
from .ingest import Sent, read_event_file, send_events
from .landing import partition_of, window_file
from .pool import ConsumerPool
from .streams import (
    Stream,
    create_stream,
    default_redis_url,
    delete_stream,
    get_stream,
    list_partitions,
    list_streams,
    parse_duration,
)
from .windows import AGGREGATES, TumblingWindows, Window, aggregate

__all__ = [
    "AGGREGATES",
    "ConsumeStats",
    "ConsumerPool",
    "EventBatchError",
    "EventProblem",
    "Reading",
    "Sent",
    "Stream",
    "StreamBusyError",
    "StreamConsumer",
    "StreamNotFoundError",
    "StreamUnavailableError",
    "TumblingWindows",
    "Window",
    "aggregate",
    "consume",
    "create_stream",
    "default_redis_url",
    "delete_stream",
    "endpoint_hook",
    "get_stream",
    "list_partitions",
    "list_streams",
    "parse_duration",
    "parse_event",
    "partition_of",
    "read_event_file",
    "send_events",
    "validate_events",
    "window_file",
]
