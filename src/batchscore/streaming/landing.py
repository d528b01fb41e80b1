"""Landing: windows, late events and rejected entries as time-partitioned Parquet in the data
store, recorded in a ledger in the state database; closed partitions get a ``_SUCCESS`` marker.

Layout, below ``streams/NAME/`` of the data store (like a capture feature)::

    windows/date=2018-08-28/hour=23/2018-08-28T230000Z.parquet   aggregates per (device, sensor)
    windows/date=2018-08-28/hour=23/_SUCCESS                      the partition is complete
    raw/date=2018-08-28/hour=23/2018-08-28T230000Z.parquet       its events, with entry ids
    late/date=2018-08-28/hour=23/<landing>.parquet               events for closed windows
    rejected/date=2018-08-29/<landing>.parquet                   entries that are not events

One landing step is exactly-once through an intent: (1) the ledger rows are committed as
``writing`` (only while the consumer holds the stream's lease); (2) the files are written, each
under a temporary name and moved into place; (3) the rows become ``landed`` together with the
stream's watermark and counters, in one transaction; only then (4) the entries are
acknowledged in Redis. A consumer that dies before (3) leaves intents: the next one removes
their files and lands the entries again. One that dies between (3) and (4) leaves landed
entries unacknowledged: the next one finds their ids in the ledger and only acknowledges them.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import IntegrityError

from ..crash import crash_point
from ..state.tables import stream_landings, stream_partitions
from ..workspace import Workspace
from .events import Reading
from .lease import Lease
from .redis_source import entry_key
from .streams import (
    PARTITIONS,
    Intent,
    Stream,
    commit_landing,
    drop_intents,
    record_intents,
    record_partition_closed,
)
from .windows import Window, aggregate

__all__ = [
    "CRASH_POINTS",
    "PARTITION_CRASH_POINT",
    "Landed",
    "Lander",
    "PartitionHook",
    "partition_of",
    "window_file",
]

log = logging.getLogger("batchscore.streaming")

CRASH_POINTS = (
    "stream-intent-recorded",  # ledger rows committed as writing, no file written
    "stream-files-written",  # files in place, ledger still says writing
    "stream-landed",  # ledger says landed, entries not yet acknowledged
    "stream-acked",  # entries acknowledged
)
# Reached when a partition's marker is written and its hook invoked, not yet recorded closed.
PARTITION_CRASH_POINT = "stream-partition-invoked"

# Called once per closed partition: (stream, partition key, input URLs, output URL) -> an object
# with job_id and run_id (an endpoint's Invocation), or None.
PartitionHook = Callable[[Stream, str, list[str], str], Any]


def partition_of(start: float, partition_by: str) -> tuple[str, float]:
    """The partition key (``date=2018-08-28/hour=23``) holding time ``start``, and its end."""
    length = PARTITIONS[partition_by]
    begin = int(start // length) * length
    moment = datetime.fromtimestamp(begin, UTC)
    key = f"date={moment:%Y-%m-%d}"
    if partition_by == "hour":
        key += f"/hour={moment:%H}"
    return key, float(begin + length)


def window_file(start: float) -> str:
    """The file name of the window starting at ``start``: ``2018-08-28T230000Z.parquet``."""
    return f"{datetime.fromtimestamp(start, UTC):%Y-%m-%dT%H%M%SZ}.parquet"


def _parquet(frame: pd.DataFrame) -> bytes:
    """``frame`` as Parquet, as ``frame.to_parquet(index=False)`` writes it, converted in
    this thread: pyarrow would start a pool of threads for every frame of more than 100 rows
    per column (and stop it again), which cost more than a window's conversion."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # as pandas' to_parquet: pyarrow reads tz-aware .values
        warnings.filterwarnings("ignore", r"(Series|DatetimeIndex)\.values returning an "
                                "ndarray that drops timezone information")
        table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


@dataclass
class Landed:
    """What one landing step did; ``acked`` is filled in by the caller."""

    windows: int = 0
    events: int = 0  # in windows
    late: int = 0
    rejected: int = 0
    ids: list[str] = field(default_factory=list)  # entry ids to acknowledge


@dataclass
class _File:
    kind: str
    path: str
    frame: pd.DataFrame
    ids: list[str]
    raw_path: str | None = None
    raw: pd.DataFrame | None = None
    window_start: float | None = None
    partition: str | None = None
    partition_end: float | None = None


class Lander:
    """Lands one stream's windows and kept-aside events; keeps its ledger."""

    def __init__(self, ws: Workspace, stream: Stream, lease: Lease) -> None:
        self.ws, self.stream, self.lease = ws, stream, lease
        self.prefix = stream.prefix
        self._ids_cache: dict[int, dict[str, str | None]] = {}

    # --- recovery ------------------------------------------------------------------------

    def recover(self) -> int:
        """Remove what a dead consumer left half-landed (intents and their files)."""
        with self.ws.engine.connect() as conn:
            rows = list(conn.execute(select(stream_landings.c.id, stream_landings.c.path,
                                            stream_landings.c.raw_path)
                                     .where(stream_landings.c.stream == self.stream.name,
                                            stream_landings.c.state == "writing")))
        for row in rows:
            for path in (row.path, row.raw_path):
                if path:
                    self.ws.data.remove(path)
        if rows:
            with self.ws.engine.begin() as conn:
                self.lease.check(conn)
                drop_intents(conn, [r.id for r in rows])
            log.info("stream %s: removed %d unfinished landings of a consumer that died",
                     self.stream.name, len(rows))
        return len(rows)

    def landed_ids(self, entry_ids: list[str]) -> set[str]:
        """Those of ``entry_ids`` that landed already (in a window, late or rejected)."""
        return set(self.landed_entries(entry_ids))

    def landed_entries(self, entry_ids: list[str]) -> dict[str, str | None]:
        """Those of ``entry_ids`` that landed already (in a window, late or rejected), each
        with the problem it was rejected for (None: it landed as an event)."""
        if not entry_ids:
            return {}
        keys = [entry_key(i) for i in entry_ids]
        low, high = min(keys), max(keys)
        with self.ws.engine.connect() as conn:
            rows = list(conn.execute(
                select(stream_landings.c.id, stream_landings.c.kind, stream_landings.c.path,
                       stream_landings.c.raw_path)
                .where(stream_landings.c.stream == self.stream.name,
                       stream_landings.c.state == "landed",
                       stream_landings.c.last_entry >= low,
                       stream_landings.c.first_entry <= high)))
        wanted = set(entry_ids)
        found: dict[str, str | None] = {}
        for row in rows:
            ids = self._ids_cache.get(row.id)
            if ids is None:
                path = row.raw_path if row.kind == "window" else row.path
                rejected = row.kind == "rejected"
                with self.ws.data.open(path) as fh:
                    table = pq.read_table(fh, columns=["entry_id", "problem"] if rejected
                                          else ["entry_id"])
                problems = (table.column("problem").to_pylist() if rejected
                            else [None] * table.num_rows)
                ids = self._ids_cache[row.id] = dict(zip(table.column("entry_id").to_pylist(),
                                                         problems, strict=True))
            found.update((i, ids[i]) for i in wanted.intersection(ids))
        return found

    # --- one landing step ----------------------------------------------------------------

    def land(self, windows: list[Window], late: list[tuple[str, Reading, int]],
             rejected: list[tuple[str, dict[str, str], str]], *, watermark: float | None,
             max_event_time: float | None) -> Landed:
        """Land ``windows``, ``late`` events (entry id, event, window start) and ``rejected``
        entries (entry id, fields, problem); commit the watermark with them."""
        files = [self._window_file(w) for w in windows if len(w)]
        files += self._late_files(late) + self._rejected_files(rejected)
        done = Landed()
        if files:
            ids = self._intend(files)
            crash_point("stream-intent-recorded")
            for item in files:
                if item.raw is not None and item.raw_path:
                    self.ws.data.write_bytes(item.raw_path, _parquet(item.raw))
                self.ws.data.write_bytes(item.path, _parquet(item.frame))
            crash_point("stream-files-written")
        else:
            ids = []
        done.windows = sum(1 for f in files if f.kind == "window")
        done.events = sum(len(f.ids) for f in files if f.kind == "window")
        done.late, done.rejected = len(late), len(rejected)
        counts = {"events_landed": done.events, "windows_landed": done.windows,
                  "events_late": done.late, "events_rejected": done.rejected}
        with self.ws.engine.begin() as conn:  # the ledger, watermark and counters together
            self.lease.check(conn)
            commit_landing(conn, self.stream.name, ids, watermark=watermark,
                           max_event_time=max_event_time, counts=counts if files else None)
        if files:
            crash_point("stream-landed")
        done.ids = [i for f in files for i in f.ids]
        return done

    def _intend(self, files: list[_File]) -> list[int]:
        now = time.time()
        intents = [_intent(item) for item in files]
        with self.ws.engine.begin() as conn:
            self.lease.check(conn)
            return record_intents(conn, self.stream.name, intents, now)

    def _window_file(self, window: Window) -> _File:
        part, end = partition_of(window.start, self.stream.partition_by)
        name = window_file(window.start)
        raw = window.raw()
        return _File("window", f"{self.prefix}/windows/{part}/{name}",
                     aggregate(window, self.stream.aggregates, raw), list(window.entry_ids),
                     raw_path=f"{self.prefix}/raw/{part}/{name}", raw=raw,
                     window_start=float(window.start), partition=part, partition_end=end)

    def _late_files(self, late: list[tuple[str, Reading, int]]) -> list[_File]:
        by_part: dict[tuple[str, float], list[tuple[str, Reading, int]]] = {}
        for item in late:
            by_part.setdefault(partition_of(item[2], self.stream.partition_by), []).append(item)
        files = []
        for (part, end), items in sorted(by_part.items()):
            frame = pd.DataFrame({
                "entry_id": pd.Series([i for i, _, _ in items], dtype="string"),
                "device": pd.Series([e.device for _, e, _ in items], dtype="string"),
                "sensor": pd.Series([e.sensor for _, e, _ in items], dtype="string"),
                "timestamp": pd.to_datetime(pd.Series([e.timestamp for _, e, _ in items],
                                                      dtype="float64"), unit="s", utc=True),
                "value": pd.Series([e.value for _, e, _ in items], dtype="float64"),
                "window_start": pd.to_datetime(pd.Series([s for _, _, s in items],
                                                         dtype="float64"), unit="s", utc=True),
            })
            files.append(_File("late", f"{self.prefix}/late/{part}/{_landing_name()}", frame,
                               [i for i, _, _ in items], partition=part, partition_end=end))
        return files

    def _rejected_files(self, rejected: list[tuple[str, dict[str, str], str]]) -> list[_File]:
        if not rejected:
            return []
        now = time.time()
        frame = pd.DataFrame({
            "entry_id": pd.Series([i for i, _, _ in rejected], dtype="string"),
            "fields": pd.Series([json.dumps(f, sort_keys=True) for _, f, _ in rejected],
                                dtype="string"),
            "problem": pd.Series([p for _, _, p in rejected], dtype="string"),
            "received_at": pd.Timestamp(now, unit="s", tz="UTC"),
        })
        part = f"date={datetime.fromtimestamp(now, UTC):%Y-%m-%d}"
        return [_File("rejected", f"{self.prefix}/rejected/{part}/{_landing_name()}", frame,
                      [i for i, _, _ in rejected])]

    # --- partitions ----------------------------------------------------------------------

    def due_partitions(self, watermark: float | None) -> list[tuple[str, float]]:
        """Partitions with landed windows that the watermark has passed and that are not
        closed yet, oldest first."""
        if watermark is None:
            return []
        landed = stream_landings.c
        closed = exists().where(and_(stream_partitions.c.stream == landed.stream,
                                     stream_partitions.c.partition_key == landed.partition_key))
        query = (select(landed.partition_key, func.max(landed.partition_end).label("end"))
                 .where(landed.stream == self.stream.name, landed.kind == "window",
                        landed.state == "landed", landed.partition_end <= watermark, ~closed)
                 .group_by(landed.partition_key).order_by("end"))
        with self.ws.engine.connect() as conn:
            return [(r.partition_key, float(r.end)) for r in conn.execute(query)]

    def close_partition(self, partition: str, end: float, hook: PartitionHook | None) -> bool:
        """Write the partition's ``_SUCCESS`` marker, invoke ``hook`` once for it, and record
        it as closed. False when it was closed already (by this or an earlier consumer)."""
        stream = self.stream
        folder = f"{self.prefix}/windows/{partition}"
        with self.ws.engine.connect() as conn:
            counts = conn.execute(
                select(func.count(), func.coalesce(func.sum(stream_landings.c.events), 0))
                .where(stream_landings.c.stream == stream.name,
                       stream_landings.c.kind == "window", stream_landings.c.state == "landed",
                       stream_landings.c.partition_key == partition)).one()
        marker = {"stream": stream.name, "partition": partition, "windows": int(counts[0]),
                  "events": int(counts[1]), "closed_at": time.time()}
        self.ws.data.write_text(f"{folder}/_SUCCESS", json.dumps(marker) + "\n")
        job_id = run_id = error = None
        if hook is not None:
            inputs = [self.ws.data.url_of(folder, "*.parquet")]
            output = self.ws.data.url_of(stream.endpoint_output or f"{self.prefix}/scored",
                                         partition) + "/"
            try:
                invocation = hook(stream, partition, inputs, output)
            except Exception as exc:  # recorded on the partition, shown by `stream show`
                error = f"{type(exc).__name__}: {exc}"
                log.warning("stream %s: partition %s closed, but invoking %s failed: %s",
                            stream.name, partition, stream.endpoint or "its hook", error)
            else:
                job_id = getattr(invocation, "job_id", None)
                run_id = getattr(invocation, "run_id", None)
        crash_point(PARTITION_CRASH_POINT)
        try:
            with self.ws.engine.begin() as conn:
                self.lease.check(conn)
                record_partition_closed(conn, stream.name, partition, end, job_id=job_id,
                                        run_id=run_id, error=error)
        except IntegrityError:
            return False
        log.info("stream %s: partition %s closed (%d windows)%s", stream.name, partition,
                 marker["windows"], f", endpoint job {job_id}" if job_id else "")
        return True


def _intent(item: _File) -> Intent:
    keys = [entry_key(i) for i in item.ids]
    return Intent(item.kind, item.path, item.raw_path, item.window_start, item.partition,
                  item.partition_end, events=len(item.ids), rows=len(item.frame),
                  first_entry=min(keys), last_entry=max(keys))


def _landing_name() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.parquet"
