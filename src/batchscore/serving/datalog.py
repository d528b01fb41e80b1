"""Request logging off the request path: a queue, a background thread, Parquet batches.

Rows land in the data store as ``inference-logs/dt=YYYY-MM-DD/hour=HH/<time>-<id>.parquet``
(UTC), one file per partition per flush, so that they can be read back for retraining."""

from __future__ import annotations

import io
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..storage import Store

__all__ = ["InferenceLogger"]

_STOP = object()


class InferenceLogger:
    """``log()`` never blocks: a full queue drops the rows and counts them in ``dropped``."""

    def __init__(self, store: Store, prefix: str = "inference-logs", *, batch_rows: int = 1000,
                 flush_seconds: float = 5.0, max_queue: int = 10_000) -> None:
        self.store, self.prefix = store, prefix.strip("/")
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self.dropped = 0
        self.written: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._loop, name="inference-logger", daemon=True)
        self._thread.start()

    def log(self, frame: pd.DataFrame, predictions: Any, *, request_id: str, model: str,
            version: str) -> None:
        rows = frame.copy()
        rows.insert(0, "request_id", request_id)
        rows.insert(1, "logged_at", pd.Timestamp(datetime.now(UTC)))
        rows.insert(2, "model", model)
        rows.insert(3, "version", version)
        rows["prediction"] = list(predictions)
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            self.dropped += len(rows)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        pending: list[pd.DataFrame] = []
        count, started = 0, time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=max(0.05, self.flush_seconds / 4))
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP:
                pending.append(item)
                count += len(item)
            due = time.monotonic() - started >= self.flush_seconds
            if pending and (item is _STOP or count >= self.batch_rows or due):
                self._write(pd.concat(pending, ignore_index=True))
                pending, count = [], 0
            if due or not pending:
                started = time.monotonic()
            if item is _STOP:
                return

    def _write(self, frame: pd.DataFrame) -> None:
        hours = frame["logged_at"].dt.strftime("dt=%Y-%m-%d/hour=%H")
        for partition, part in frame.groupby(hours, sort=True):
            buf = io.BytesIO()
            part.to_parquet(buf, index=False)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            rel = f"{self.prefix}/{partition}/{stamp}-{uuid.uuid4().hex[:8]}.parquet"
            try:
                self.store.write_bytes(rel, buf.getvalue())
            except Exception:  # a store that fails must not stop serving
                self.dropped += len(part)
                continue
            self.written.append(rel)
