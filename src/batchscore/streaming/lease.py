"""One consumer per stream at a time: a lease in the stream's row of the state database.

A consumer takes the lease when nobody holds it, when the holder let it expire, or when the
holder is a process of this machine that no longer exists (so a consumer killed with SIGKILL
is replaced at once). It renews the lease while it runs, and every landing commits only
while it still holds it, so a consumer that was paused past its lease cannot land anything.
This module decides; :mod:`.records` writes the stream's row.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Connection, select

from ..state.jobs import _dead_here, runner_name
from ..state.tables import streams
from ..workspace import Workspace
from .errors import StreamBusyError, StreamNotFoundError, StreamUnavailableError
from .streams import release_lease, renew_lease, take_lease

__all__ = ["LEASE_SECONDS", "Lease"]

LEASE_SECONDS = 30.0


class Lease:
    """The lease of stream ``name`` for this process (``token`` tells holders apart)."""

    def __init__(self, ws: Workspace, name: str, seconds: float = LEASE_SECONDS) -> None:
        self.ws, self.name, self.seconds = ws, name, seconds
        self.owner = runner_name()
        self.token = uuid.uuid4().hex
        self.renewed_at = 0.0

    def acquire(self) -> None:
        """Take the lease, or raise StreamBusyError naming the live holder."""
        now = time.time()
        with self.ws.engine.begin() as conn:
            row = conn.execute(select(streams.c.lease_owner, streams.c.lease_token,
                                      streams.c.lease_until)
                               .where(streams.c.name == self.name)).first()
            if row is None:
                raise StreamNotFoundError(f"no stream named {self.name!r}")
            free = (row.lease_token is None or row.lease_token == self.token
                    or (row.lease_until or 0) < now or _dead_here(row.lease_owner))
            if not free:
                raise StreamBusyError(
                    f"stream {self.name!r} is being consumed by {row.lease_owner} (its lease "
                    f"runs {row.lease_until - now:.0f}s more); stop that consumer first")
            if not take_lease(conn, self.name, row.lease_token, owner=self.owner,
                              token=self.token, until=now + self.seconds):
                raise StreamBusyError(f"stream {self.name!r}: another consumer took the lease "
                                      "at the same moment")
        self.renewed_at = now

    def check(self, conn: Connection) -> None:
        """Renew the lease inside ``conn``'s transaction; StreamUnavailableError if it is
        lost (taken over, or the stream deleted): then nothing of that transaction counts."""
        now = time.time()
        if not renew_lease(conn, self.name, self.token, now + self.seconds):
            raise StreamUnavailableError(
                f"stream {self.name!r}: this consumer lost its lease (the stream was deleted, "
                "or another consumer took over after this one stalled); stopping")
        self.renewed_at = now

    def renew(self, every: float | None = None) -> None:
        """Renew the lease if ``every`` seconds (default a third of it) have passed."""
        every = self.seconds / 3 if every is None else every
        if time.time() - self.renewed_at >= every:
            with self.ws.engine.begin() as conn:
                self.check(conn)

    def release(self) -> None:
        with self.ws.engine.begin() as conn:
            release_lease(conn, self.name, self.token)
