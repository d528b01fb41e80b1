"""The service's consumers: one thread per stream that has a Redis URL, started and stopped
with the service, and started or stopped as streams are created or deleted.

A consumer that fails (Redis unreachable, the lease held by a ``batchscore stream consume``
elsewhere) is started again later, waiting longer each time (up to a minute); its error shows
in ``GET /api/v1/streams/NAME``. Endpoint jobs of closed partitions are queued for the
service's run slots (not started in a process of their own).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..workspace import Workspace
from .consumer import ConsumeStats, StreamConsumer
from .errors import StreamBusyError, StreamNotFoundError
from .streams import default_redis_url, list_streams

__all__ = ["ConsumerPool"]

log = logging.getLogger("batchscore.streaming")
MAX_BACKOFF_S = 60.0


@dataclass
class _Running:
    thread: threading.Thread
    stop: threading.Event
    state: str = "starting"  # starting, consuming, waiting, stopped
    error: str | None = None
    failures: int = 0
    stats: ConsumeStats = field(default_factory=ConsumeStats)


class ConsumerPool(threading.Thread):
    """Keeps one consumer thread per stream with a Redis URL; ``stop()`` ends them all."""

    def __init__(self, ws: Workspace, interval: float = 5.0, **options: Any) -> None:
        super().__init__(daemon=True, name="batchscore-streams")
        self.ws, self.interval, self.options = ws, interval, options
        self.running: dict[str, _Running] = {}
        self._halt = threading.Event()
        self.wake = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.sync()
            except Exception as exc:  # the database is away: try again at the next scan
                log.warning("stream consumers: cannot read streams: %s", exc)
            self.wake.wait(self.interval)
            self.wake.clear()

    def sync(self) -> None:
        """Start consumers for new streams, stop those of deleted ones."""
        wanted = {s.name for s in list_streams(self.ws) if s.redis_url or default_redis_url(
            self.ws)}
        for name in wanted - set(self.running):
            if self._halt.is_set():
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._serve, args=(name, stop), daemon=True,
                                      name=f"batchscore-stream-{name}")
            self.running[name] = _Running(thread, stop)
            thread.start()
        for name in set(self.running) - wanted:
            self.running.pop(name).stop.set()

    def status(self, name: str) -> dict[str, Any] | None:
        """The consumer of ``name`` in this service: state, last error, its run's counters."""
        found = self.running.get(name)
        if found is None:
            return None
        return {"state": found.state, "error": found.error, "stats": found.stats.to_dict()}

    def _serve(self, name: str, stop: threading.Event) -> None:
        record = self.running[name]
        while not stop.is_set() and not self._halt.is_set():
            consumer = StreamConsumer(self.ws, name, start_endpoint_jobs=False, **self.options)
            record.stats = consumer.stats
            record.state = "consuming"
            try:
                consumer.run(stop)
            except StreamNotFoundError:
                record.state = "stopped"
                return
            except Exception as exc:
                record.failures += 1
                record.error = f"{type(exc).__name__}: {exc}"
                record.state = "waiting"
                wait = min(MAX_BACKOFF_S, self.interval * 2 ** (record.failures - 1))
                level = logging.INFO if isinstance(exc, StreamBusyError) else logging.WARNING
                log.log(level, "stream %s: consumer stopped (%s); again in %.0fs", name,
                        record.error, wait)
                stop.wait(wait)
            else:
                record.failures, record.error = 0, None
        record.state = "stopped"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every consumer (open windows stay pending in Redis) and wait for them."""
        self._halt.set()
        self.wake.set()
        for record in list(self.running.values()):
            record.stop.set()
        deadline = time.monotonic() + timeout
        for record in list(self.running.values()):
            record.thread.join(max(0.0, deadline - time.monotonic()))
