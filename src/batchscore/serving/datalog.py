"""Request logging off the request path: a queue, a background thread, Parquet batches.

Rows land in the data store as ``inference-logs/dt=YYYY-MM-DD/hour=HH/<time>-<id>.parquet``
(UTC), one file per partition per flush, so that they can be read back for retraining."""

from __future__ import annotations

import io
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..storage import Store

__all__ = ["LOG_COLUMNS", "InferenceLogger", "clashing_columns"]


class _Entry(NamedTuple):
    frame: pd.DataFrame
    predictions: list[Any]
    request_id: str
    logged_at: datetime
    model: str
    version: str


_META = ("request_id", "logged_at", "model", "version")
LOG_COLUMNS = (*_META, "prediction")  # the log's own columns, beside a request's inputs


def clashing_columns(names: Sequence[str]) -> list[str]:
    """The input columns among ``names`` that the log's own columns would hide."""
    return [c for c in LOG_COLUMNS if c in names]


class InferenceLogger:
    """``log()`` never blocks: a full queue drops the rows and counts them in ``dropped``.

    The request path only copies the frame and enqueues it; the background thread wakes a few
    times a second, drains the queue in bulk and builds one DataFrame per flush (per-request
    pandas column inserts cost about 1 ms of CPU each, on the event loop's thread)."""

    def __init__(self, store: Store, prefix: str = "inference-logs", *,
                 batch_rows: int = 100_000, flush_seconds: float = 5.0,
                 max_queue: int = 10_000) -> None:
        # batch_rows: a flush (one concat, one Parquet file per hour) costs a few ms whatever
        # its size; at 1,000 rows a server answering 100-row requests flushed every 10
        # requests (+0.5 ms of CPU per request, and many small files); 100,000 rows of a
        # 10-column model hold about 10 MB until the flush, every ``flush_seconds`` at most
        self.store, self.prefix = store, prefix.strip("/")
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self.dropped = 0
        self.written: list[str] = []
        self._poll = min(0.2, max(0.02, flush_seconds / 4))
        self._queue: queue.Queue[_Entry] = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="inference-logger", daemon=True)
        self._thread.start()

    def log(self, frame: pd.DataFrame, predictions: Any, *, request_id: str, model: str,
            version: str, columns: Sequence[str] | None = None) -> None:
        """Queue one request's rows (inputs, predictions); ValueError if they do not match.
        ``columns``: the frame's column names when the caller knows them (looking them up
        in a pandas index of strings costs more than the rest of this call)."""
        values = list(predictions)
        if len(values) != len(frame):
            raise ValueError(f"{len(values)} predictions for {len(frame)} input rows")
        taken = clashing_columns(frame.columns if columns is None else columns)
        if taken:
            raise ValueError(f"input columns {taken} clash with the log's own columns")
        entry = _Entry(frame.copy(), values, request_id, datetime.now(UTC), model, version)
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += len(frame)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        pending: list[_Entry] = []
        count, started = 0, time.monotonic()
        while True:
            stopping = self._stop.wait(self._poll)
            while True:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                pending.append(entry)
                count += len(entry.frame)
            due = time.monotonic() - started >= self.flush_seconds
            if pending and (stopping or count >= self.batch_rows or due):
                try:
                    frame = _rows(pending)
                except Exception:  # rows that cannot be put together must not stop logging
                    self.dropped += count
                else:
                    self._write(frame)
                pending, count = [], 0
            if due or not pending:
                started = time.monotonic()
            if stopping:
                return

    def _write(self, frame: pd.DataFrame) -> None:
        hours = frame["logged_at"].dt.floor("h")  # one strftime per hour, not per row
        for hour, part in frame.groupby(hours, sort=True):
            partition = hour.strftime("dt=%Y-%m-%d/hour=%H")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            rel = f"{self.prefix}/{partition}/{stamp}-{uuid.uuid4().hex[:8]}.parquet"
            try:
                buf = io.BytesIO()
                part.to_parquet(buf, index=False)
                self.store.write_bytes(rel, buf.getvalue())
            except Exception:  # rows that do not convert, or a store that fails, must not
                # stop serving (nor this thread): they are counted in ``dropped``
                self.dropped += len(part)
                continue
            self.written.append(rel)


def _rows(entries: list[_Entry]) -> pd.DataFrame:
    """One frame of the queued requests: request id, time, model, version, inputs, prediction.

    The per-request values are repeated with NumPy (one element per request, not per row:
    a 10,000-row request made 40,000 list entries and 10,000 datetime conversions); numeric
    predictions are joined as arrays, any others (texts, lists, None) as Python values."""
    counts = np.fromiter((len(e.frame) for e in entries), dtype=np.int64, count=len(entries))

    def spread(values: list[Any]) -> np.ndarray:
        return np.repeat(np.array(values, dtype=object), counts)

    frame = pd.concat([e.frame for e in entries], ignore_index=True)
    frame.insert(0, "request_id", spread([e.request_id for e in entries]))
    frame.insert(1, "logged_at", pd.DatetimeIndex([e.logged_at for e in entries]).repeat(counts))
    frame.insert(2, "model", spread([e.model for e in entries]))
    frame.insert(3, "version", spread([e.version for e in entries]))
    frame["prediction"] = _predictions(entries)
    return frame


def _predictions(entries: list[_Entry]) -> np.ndarray | list[Any]:
    """Every entry's predictions in order: one array when all are plain numbers (or booleans)
    of one kind, else a list of the values as they are."""
    arrays = []
    for e in entries:
        array = np.asarray(e.predictions) if e.predictions else None
        if array is None:
            continue
        if array.ndim != 1 or array.dtype.kind not in "biuf":
            return [p for e in entries for p in e.predictions]
        arrays.append(array)
    kinds = {a.dtype.kind == "b" for a in arrays}
    if len(kinds) > 1:  # booleans beside numbers: as pandas would have kept them
        return [p for e in entries for p in e.predictions]
    return np.concatenate(arrays) if arrays else []
