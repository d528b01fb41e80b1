"""The service object: how one process behaves (:class:`ServiceConfig`), what it holds (the
workspace, the run slots, the trigger loop, the stream consumers, the rate limiter), and how a
router reaches it from a request (:func:`service_of`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request

from ..errors import UsageError
from ..jobs.executors.local import check_settings, start_worker_server
from ..streaming.pool import ConsumerPool
from ..triggers import TriggerLoop
from ..workspace import Workspace
from .slots import RunSlots

__all__ = ["MiB", "RateLimiter", "Service", "ServiceConfig", "consumer_status", "service_of",
           "ws_of"]

MiB = 1024 * 1024


@dataclass
class ServiceConfig:
    """How one service process behaves; every field has an embedded default."""

    auth: str = "auto"  # auto: every caller needs a token, the local admin's is in a file;
    # always: the same, without the file; off: no tokens (refused on a public address unless
    # the caller says it means it: see batchscore serve)
    run_slots: int = 2  # runs executed at once by this process
    scan_interval: float = 5.0  # seconds between trigger scans
    background: bool = True  # start the run slots and the trigger loop with the app
    max_body_bytes: int = 1 * MiB  # JSON requests
    max_upload_bytes: int = 4096 * MiB  # uploads to the data store
    runs_per_minute: float = 30.0  # per token (or per client without one)
    runs_burst: int = 10
    link_ttl: float = 3600.0  # seconds a download link lives
    link_max_ttl: float = 7 * 86400.0  # no link is honoured for longer after it was made
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides localhost and loopback
    max_json_depth: int = 32  # nesting of a JSON body
    max_json_elements: int = 100_000  # values in the arrays and objects of a JSON body

    def __post_init__(self) -> None:
        if self.auth not in ("auto", "always", "off"):
            raise UsageError(f"auth must be auto, always or off, got {self.auth!r}")
        if not 0 < self.link_ttl <= self.link_max_ttl:
            raise UsageError(f"link_ttl must be above 0 and at most link_max_ttl "
                             f"({self.link_max_ttl:g} s), got {self.link_ttl:g}")
        self.allowed_hosts = tuple(self.allowed_hosts)


class RateLimiter:
    """A token bucket per key: ``rate`` per minute, up to ``burst`` at once."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            level, stamp = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - stamp) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate if self.rate > 0 else 3600.0


@dataclass
class Service:
    """What one service process holds; the routers reach it through :func:`service_of`."""

    ws: Workspace
    config: ServiceConfig
    slots: RunSlots
    triggers: TriggerLoop
    limiter: RateLimiter
    streams: ConsumerPool
    started_at: float = field(default_factory=time.time)

    @classmethod
    def open(cls, ws: Workspace, config: ServiceConfig) -> Service:
        if ws.settings.executor == "local":
            check_settings()  # its run slots' workers: a bad setting stops it here
        return cls(ws, config, RunSlots(ws, config.run_slots),
                   TriggerLoop(ws, config.scan_interval),
                   RateLimiter(config.runs_per_minute, config.runs_burst),
                   ConsumerPool(ws, config.scan_interval))  # one consumer thread per stream

    def start(self) -> None:
        """Start the run slots, the trigger loop and the stream consumers (and, for local
        workers, the fork server the run slots' jobs start them from: it imports in the
        background meanwhile)."""
        if self.ws.settings.executor == "local":
            start_worker_server()
        self.slots.start()
        self.triggers.start()
        self.streams.start()

    def stop(self) -> None:
        self.slots.stop()
        self.triggers.stop()
        self.streams.stop()

    def take_run(self, who: str) -> None:
        """Count one run started by ``who``; over the rate limit, 429 with ``Retry-After``."""
        wait = self.limiter.take(who)
        if wait:
            raise HTTPException(429, f"too many runs started by {who!r}; try again in "
                                f"{wait:.0f}s", headers={"Retry-After": str(int(wait) + 1)})


def service_of(request: Request) -> Service:
    """The service that answers ``request``."""
    service: Service = request.app.state.service
    return service


def ws_of(request: Request) -> Workspace:
    """The workspace of the service that answers ``request``."""
    return service_of(request).ws


def consumer_status(request: Request, name: str) -> dict[str, Any] | None:
    """This service's consumer of stream ``name`` (state, last error, counters), or None."""
    return service_of(request).streams.status(name)
