"""The consumer of one stream: Redis Streams entries in, tumbling windows out, exactly once.

It holds the stream's lease, reads entries through the consumer group (its own pending entries
first, then the pending entries of consumers that died, then new ones), validates them into
events, puts each into its window or keeps it aside as late or rejected, lands what is due
(:mod:`.landing`), and acknowledges entries only after they have landed. Entries of windows
still open stay pending in Redis: a consumer that dies loses nothing, and the next one, finding
them pending, rebuilds those windows. Entries that landed but were not acknowledged before a
crash are recognised by the ledger and only acknowledged.

An entry that cannot be decoded (fields that are not UTF-8) or validated is rejected: it lands
in ``rejected/`` with the reason, goes to the dead-letter stream (``KEY:dead-letter``) in the
transaction that acknowledges it, and the consumer goes on. What every group has acknowledged
is trimmed from the Redis stream (at most every :data:`TRIM_EVERY_S` seconds, and when the
consumer stops).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from ..crash import crash_point
from ..redact import hide_userinfo as safe_url
from ..workspace import Workspace
from .errors import StreamUnavailableError
from .events import Reading, canonical_entry, parse_event
from .landing import Lander, PartitionHook
from .lease import LEASE_SECONDS, Lease
from .redis_source import (
    DeadLetter,
    Entry,
    ReadAhead,
    ack,
    autoclaim,
    connect_redis,
    decode_fields,
    ensure_group,
    fields_of,
    raw_reads,
    read_new,
    read_own_pending,
    trim_acknowledged,
)
from .streams import PARTITIONS, Stream, get_stream, redis_url_of
from .windows import TumblingWindows

__all__ = ["TRIM_EVERY_S", "ConsumeStats", "StreamConsumer", "consume", "endpoint_hook"]

log = logging.getLogger("batchscore.streaming")

TRIM_EVERY_S = 5.0  # at most this often, the acknowledged entries are trimmed from Redis


@dataclass
class ConsumeStats:
    """What one consumer did (this run only; the stream's totals are in its row)."""

    read: int = 0  # entries read, redelivered ones included
    events: int = 0  # events that landed in windows
    windows: int = 0
    late: int = 0
    rejected: int = 0
    duplicates: int = 0  # redelivered entries that had landed already: only acknowledged
    deleted: int = 0  # pending entries deleted from the Redis stream meanwhile
    dead_lettered: int = 0  # rejected entries added to the dead-letter stream
    acked: int = 0
    trimmed: int = 0  # acknowledged entries removed from the Redis stream
    partitions: int = 0
    open_windows: int = 0
    open_events: int = 0
    watermark: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def endpoint_hook(ws: Workspace, *, start: bool = True) -> PartitionHook:
    """A partition hook that invokes the stream's batch endpoint once per partition (the run
    key ``stream:NAME:PARTITION`` makes a second call return the first invocation)."""

    def invoke(stream: Stream, partition: str, inputs: list[str], output: str) -> Any:
        from ..endpoints import invoke_endpoint

        assert stream.endpoint is not None
        return invoke_endpoint(ws, stream.endpoint, inputs, output,
                               run_key=f"stream:{stream.name}:{partition}", start=start,
                               created_by=f"stream:{stream.name}")

    return invoke


class StreamConsumer:
    """Consumes stream ``name`` until stopped; see :meth:`run`."""

    def __init__(
        self,
        ws: Workspace,
        name: str,
        *,
        consumer: str | None = None,
        batch: int = 1000,
        block_ms: int = 500,
        claim_idle_ms: int = 60_000,
        lease_seconds: float = LEASE_SECONDS,
        on_partition: PartitionHook | None = None,
        start_endpoint_jobs: bool = True,
        progress: Callable[[ConsumeStats], None] | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be 1 or more, got {batch}")
        self.ws, self.name = ws, name
        self.consumer = consumer or socket.gethostname()
        self.batch, self.block_ms, self.claim_idle_ms = batch, block_ms, claim_idle_ms
        self.lease = Lease(ws, name, lease_seconds)
        self.on_partition = on_partition
        self.start_endpoint_jobs = start_endpoint_jobs
        self.progress = progress
        self.stats = ConsumeStats()
        self._late: list[tuple[str, Reading, int]] = []
        self._rejected: list[tuple[str, dict[str, str], str]] = []
        self._ack_only: list[str] = []
        self._dead: list[DeadLetter] = []  # rejected entries landing now, as they came
        self._dead_only: list[DeadLetter] = []  # rejected entries that landed before a crash
        self._trimmed_at: float | None = None  # never yet: the first chance trims
        self._trim_failed = False
        self._checked_partition: float | None = None

    def run(self, stop: threading.Event | None = None, *, max_events: int | None = None,
            until_idle_s: float | None = None, close_all: bool = False) -> ConsumeStats:
        """Consume until ``stop`` is set, ``max_events`` entries have been read, or nothing new
        came for ``until_idle_s`` seconds. ``close_all`` then lands the windows still open (the
        end of the input: later events for them will be late). Entries of windows left open
        stay pending in Redis for the next consumer."""
        stop = stop or threading.Event()
        began = time.monotonic()
        stream = get_stream(self.ws, self.name)
        url = redis_url_of(self.ws, stream)
        client = raw_reads(connect_redis(url, decode=False))  # each entry decoded by _take
        try:
            ensure_group(client, stream.redis_key, start="0")
            self.lease.acquire()
            try:
                self._consume(client, stop, max_events, until_idle_s, close_all)
            except redis.RedisError as exc:
                raise StreamUnavailableError(
                    f"stream {self.name!r}: Redis at {safe_url(url)} failed: {exc}") from None
            finally:
                self._release()
        finally:
            client.close()
            self.stats.seconds = time.monotonic() - began
        return self.stats

    def _release(self) -> None:
        try:
            self.lease.release()
        except Exception as exc:  # the database is gone: the lease expires by itself
            log.warning("stream %s: could not release the lease: %s", self.name, exc)

    def _consume(self, client: redis.Redis, stop: threading.Event, max_events: int | None,
                 until_idle_s: float | None, close_all: bool) -> None:
        self.lander = Lander(self.ws, get_stream(self.ws, self.name), self.lease)
        self.lander.recover()
        stream = get_stream(self.ws, self.name)  # the watermark as last committed
        self.stream, self.key = stream, stream.redis_key
        self.windows = TumblingWindows(stream.window_s, stream.lateness_s,
                                       watermark=stream.watermark,
                                       max_event_time=stream.max_event_time)
        self._close_partitions()
        # 1. Our own pending entries: delivered to this consumer name before, never acked.
        cursor = "0"
        while not stop.is_set():
            entries = read_own_pending(client, self.key, self.consumer, cursor, self.batch)
            if not entries:
                break
            cursor = entries[-1][0]
            self._take(client, entries, redelivered=True)
        # 2. Pending entries of other consumers: with the lease, they are dead or fenced off.
        self._claim(client, 0, stop)
        last_claim = time.monotonic()
        idle_since = time.monotonic()
        # 3. New entries; after a batch, the next one is asked for before this one lands.
        ahead: ReadAhead | None = None
        try:
            while not stop.is_set():
                if max_events is not None and self.stats.read >= max_events:
                    break
                if ahead is not None:
                    entries, ahead = ahead.entries(), None
                else:
                    entries = read_new(client, self.key, self.consumer,
                                       self._count(max_events, 0), self.block_ms)
                now = time.monotonic()
                if entries:
                    following = self._count(max_events, len(entries))
                    if following > 0 and not stop.is_set():
                        ahead = ReadAhead(client, self.key, self.consumer, following)
                    self._take(client, entries, redelivered=False)
                    idle_since = now
                elif until_idle_s is not None and now - idle_since >= until_idle_s:
                    break
                if now - last_claim >= self.claim_idle_ms / 1000:
                    self._claim(client, self.claim_idle_ms, stop)
                    last_claim = time.monotonic()
                self.lease.renew()
                self._report()
        finally:
            if ahead is not None:  # its entries, if any, stay pending for the next run
                ahead.close()
        if close_all and not stop.is_set():
            self._flush(client, close_all=True)
        self._trim(client, force=True)
        self._report()

    def _count(self, max_events: int | None, taking: int) -> int:
        """How many new entries to ask for, ``taking`` entries being taken already."""
        if max_events is None:
            return self.batch
        return max(0, min(self.batch, max_events - self.stats.read - taking))

    def _claim(self, client: redis.Redis, min_idle_ms: int, stop: threading.Event) -> None:
        cursor = "0-0"
        while not stop.is_set():
            cursor, entries, deleted = autoclaim(client, self.key, self.consumer, min_idle_ms,
                                                 cursor, self.batch)
            if deleted:
                self.stats.deleted += len(deleted)
                log.warning("stream %s: %d pending entries were deleted from Redis before "
                            "they landed", self.name, len(deleted))
            if entries:
                self._take(client, entries, redelivered=True)
            if cursor == "0-0":
                break

    def _take(self, client: redis.Redis, entries: list[Entry], *, redelivered: bool) -> None:
        """Decode, validate, window and land one batch of entries; acknowledge what landed."""
        windows = self.windows
        landed: dict[str, str | None] = {}
        if redelivered:
            landed = self.lander.landed_entries([i for i, _ in entries
                                                 if i not in windows.held])
        now = time.time()
        max_future = self.stream.max_future_s
        for entry_id, raw in entries:
            if redelivered and entry_id in windows.held:
                continue  # in an open window already (claimed back from ourselves)
            self.stats.read += 1
            if type(raw) is list:  # as Redis sent it: a canonical event goes straight in
                if entry_id not in landed:
                    reading = canonical_entry(raw, max_future, now)
                    if reading is not None:
                        self._place(entry_id, reading)
                        continue
                raw = fields_of(raw)
            if entry_id in landed:  # landed before a crash, not acknowledged then
                self.stats.duplicates += 1
                self._ack_only.append(entry_id)
                problem = landed[entry_id]
                if problem is not None:  # rejected: its dead letter goes with the ack
                    self._dead_only.append((entry_id, raw, problem))
                continue
            if not raw:
                self.stats.deleted += 1
                self._ack_only.append(entry_id)
                continue
            fields, undecodable = decode_fields(raw)
            if undecodable:
                self._reject(entry_id, raw, fields, undecodable)
                continue
            result = parse_event(fields, max_future_s=max_future, now=now)
            if isinstance(result, Reading):
                self._place(entry_id, result)
            else:
                problem = "; ".join(f"{p.field}: {p.problem}" for p in result)
                self._reject(entry_id, raw, fields, problem)
        self._flush(client)

    def _place(self, entry_id: str, event: Reading) -> None:
        """Put ``event`` into its window, or aside as late when that window has closed."""
        if self.windows.add(entry_id, event) is None:
            self._late.append((entry_id, event, self.windows.window_of(event.timestamp)))

    def _reject(self, entry_id: str, raw: dict[Any, Any], fields: dict[str, str],
                problem: str) -> None:
        self._rejected.append((entry_id, fields, problem))
        self._dead.append((entry_id, raw, problem))

    def _flush(self, client: redis.Redis, *, close_all: bool = False) -> None:
        windows = self.windows
        due = windows.close_all() if close_all else windows.due()
        to_ack, dead = self._ack_only, self._dead_only
        self._ack_only, self._dead_only = [], []
        if due or self._late or self._rejected:
            done = self.lander.land(due, self._late, self._rejected,
                                    watermark=windows.watermark,
                                    max_event_time=windows.max_event_time)
            dead = dead + self._dead
            self._late, self._rejected, self._dead = [], [], []
            self.stats.events += done.events
            self.stats.windows += done.windows
            self.stats.late += done.late
            self.stats.rejected += done.rejected
            to_ack = to_ack + done.ids
        if to_ack:
            self.stats.acked += ack(client, self.key, to_ack, dead)
            self.stats.dead_lettered += len(dead)
            crash_point("stream-acked")
            self._trim(client)
        if due:
            self._close_partitions()

    def _trim(self, client: redis.Redis, *, force: bool = False) -> None:
        """Trim what every group has acknowledged from the Redis stream (landed, since this
        consumer acknowledges only what landed); a Redis without ``XTRIM MINID`` (before 6.2)
        is warned about once and left as it is."""
        now = time.monotonic()
        if self._trim_failed or (not force and self._trimmed_at is not None
                                 and now - self._trimmed_at < TRIM_EVERY_S):
            return
        self._trimmed_at = now
        try:
            self.stats.trimmed += trim_acknowledged(client, self.key)
        except redis.ResponseError as exc:
            self._trim_failed = True
            log.warning("stream %s: the Redis stream cannot be trimmed (%s); it keeps every "
                        "entry", self.name, exc)

    def _close_partitions(self) -> None:
        """Close the partitions the watermark has passed (once each, across restarts)."""
        mark = self.windows.watermark
        if mark is None:
            return
        length = PARTITIONS[self.stream.partition_by]
        boundary = (mark // length) * length
        if self._checked_partition is not None and boundary <= self._checked_partition:
            return
        hook = self.on_partition
        if hook is None and self.stream.endpoint:
            hook = endpoint_hook(self.ws, start=self.start_endpoint_jobs)
        for partition, end in self.lander.due_partitions(mark):
            if self.lander.close_partition(partition, end, hook):
                self.stats.partitions += 1
        self._checked_partition = boundary

    def _report(self) -> None:
        self.stats.open_windows = len(self.windows.open)
        self.stats.open_events = len(self.windows.held)
        self.stats.watermark = self.windows.watermark
        if self.progress is not None:
            self.progress(self.stats)


def consume(ws: Workspace, name: str, *, stop: threading.Event | None = None,
            max_events: int | None = None, until_idle_s: float | None = None,
            close_all: bool = False, **options: Any) -> ConsumeStats:
    """Run a :class:`StreamConsumer` of ``name`` (``options`` are its settings) until stopped,
    ``max_events`` entries are read, or ``until_idle_s`` seconds pass with nothing new.

    This is the landing path at full speed: entries are read ``batch`` at a time (default
    1000) and acknowledged in pipelined chunks; a benchmark sends events with
    :func:`batchscore.streaming.send_events` and times this."""
    consumer = StreamConsumer(ws, name, **options)
    return consumer.run(stop, max_events=max_events, until_idle_s=until_idle_s,
                        close_all=close_all)
