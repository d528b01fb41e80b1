"""The trigger loop: storage triggers watch the data store, schedules start runs at cron ticks.

Exactly once, across restarts. A blob version (path + etag, or size and mtime where the store
has no etag) starts one run: the ledger row and the queued run are committed in one
transaction under a unique constraint on (trigger, path, version), *before* anything runs;
the service's run slots then execute queued runs, and a service that restarts finds them
queued. A blob counts only once its upload is complete: seen with the same version for
``settle_seconds`` (two scans), or, with a ``marker`` pattern (the older ``trigger*``
convention), once a marker file lies in its folder. A store that cannot be reached is tried
again later, waiting longer each time (up to a minute); nothing is lost or done twice.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from ..crash import crash_point
from ..pipelines import validate_params
from ..state.runs import Run, create_run
from ..workspace import Workspace
from . import blob_ledger as ledgers
from .blobs import Blob, list_blobs
from .definitions import Trigger, list_triggers, move_cursor

__all__ = ["TriggerLoop", "scan_storage", "tick_schedule"]

log = logging.getLogger("batchscore.triggers")

MAX_BACKOFF_S = 60.0


@dataclass
class _Seen:
    version: str
    since: float


@dataclass
class ScanState:
    """What one trigger loop remembers between scans (not durable: only delays on restart)."""

    seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)


def scan_storage(ws: Workspace, trigger: Trigger, state: ScanState,
                 now: float | None = None) -> list[Run]:
    """One scan of a storage trigger; returns the runs it queued."""
    now = time.time() if now is None else now
    blobs = list_blobs(ws, trigger.prefix or "")
    markers = {b.path.rsplit("/", 1)[0] for b in blobs
               if trigger.marker and fnmatch.fnmatchcase(b.path.rsplit("/", 1)[-1],
                                                         trigger.marker)}
    done = ledgers.seen(ws.engine, trigger.id)
    started: list[Run] = []
    for blob in blobs:
        if not trigger.matches(blob.path) or (blob.path, blob.version) in done:
            continue
        if trigger.marker and fnmatch.fnmatchcase(blob.path.rsplit("/", 1)[-1], trigger.marker):
            continue
        if trigger.marker:
            ready = blob.path.rsplit("/", 1)[0] in markers
        else:
            key = (trigger.id, blob.path)
            seen = state.seen.get(key)
            if seen is None or seen.version != blob.version:
                state.seen[key] = _Seen(blob.version, now)
                ready = trigger.settle_seconds == 0
            else:
                ready = now - seen.since >= trigger.settle_seconds
        if ready:
            run = _start(ws, trigger, blob)
            state.seen.pop((trigger.id, blob.path), None)
            if run is not None:
                started.append(run)
    return started


def _start(ws: Workspace, trigger: Trigger, blob: Blob) -> Run | None:
    """Record the blob and its run in one transaction; None when it was recorded already."""
    params = {**trigger.params, "input": blob.path, "output": trigger.output}
    reason = None
    try:
        params = validate_params(ws, trigger.pipeline, params).model_dump(mode="json")
    except Exception as exc:  # recorded as a failed run, so that it shows, and not retried
        reason = f"not started: {exc}"
    try:
        with ws.engine.begin() as conn:
            run = create_run(conn, trigger.pipeline, params,
                             run_key=f"storage:{trigger.id}:{blob.path}:{blob.version}",
                             trigger_id=trigger.id, created_by=f"trigger:{trigger.name}",
                             state="failed" if reason else "queued", reason=reason)
            crash_point("trigger-run-inserting")  # inside the transaction: rolled back
            ledgers.record_started(conn, trigger.id, blob, run.id)
    except IntegrityError:
        return None
    crash_point("trigger-run-recorded")
    log.info("trigger %s: %s (version %s) started run %s", trigger.name, blob.path,
             blob.version, run.id)
    return run


def tick_schedule(ws: Workspace, trigger: Trigger, now: float | None = None) -> Run | None:
    """Start the run of the latest cron tick not yet started (missed ticks collapse into one)."""
    from croniter import croniter

    now = time.time() if now is None else now
    cursor = trigger.cursor or trigger.created_at
    it = croniter(trigger.cron, cursor)
    tick = it.get_next(float)
    if tick > now:
        return None
    for _ in range(10_000):
        following = it.get_next(float)
        if following > now:
            break
        tick = following
    try:
        with ws.engine.begin() as conn:
            move_cursor(conn, trigger.id, tick)
            run = create_run(conn, trigger.pipeline, dict(trigger.params),
                             run_key=f"schedule:{trigger.id}:{tick:.0f}", trigger_id=trigger.id,
                             created_by=f"schedule:{trigger.name}")
    except IntegrityError:
        with ws.engine.begin() as conn:
            move_cursor(conn, trigger.id, tick)
        return None
    log.info("schedule %s: tick %s started run %s", trigger.name, tick, run.id)
    return run


@dataclass
class _Health:
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    last_scan: float | None = None


class TriggerLoop(threading.Thread):
    """Scans every enabled trigger every ``interval`` seconds, backing off from failures."""

    def __init__(self, ws: Workspace, interval: float = 5.0) -> None:
        super().__init__(daemon=True, name="batchscore-triggers")
        self.ws, self.interval = ws, interval
        self.state = ScanState()
        self.health: dict[str, _Health] = {}
        self._halt = threading.Event()
        self.wake = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.scan_once()
            self.wake.wait(self.interval)
            self.wake.clear()

    def stop(self) -> None:
        self._halt.set()
        self.wake.set()

    def scan_once(self, now: float | None = None) -> list[Run]:
        started: list[Run] = []
        try:
            all_triggers = list_triggers(self.ws.engine)
        except Exception as exc:
            log.warning("trigger loop: cannot read triggers: %s", exc)
            return started
        for trigger in all_triggers:
            if not trigger.enabled:
                continue
            health = self.health.setdefault(trigger.id, _Health())
            clock = time.time() if now is None else now
            if clock < health.retry_at:
                continue
            try:
                if trigger.kind == "schedule":
                    run = tick_schedule(self.ws, trigger, clock)
                    started += [run] if run else []
                else:
                    started += scan_storage(self.ws, trigger, self.state, clock)
            except Exception as exc:
                health.failures += 1
                wait = min(MAX_BACKOFF_S, self.interval * 2 ** (health.failures - 1))
                health.retry_at = clock + wait
                health.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("trigger %s: scan failed (%s); next try in %.0fs", trigger.name,
                            health.last_error, wait)
            else:
                health.failures, health.retry_at, health.last_error = 0, 0.0, None
                health.last_scan = clock
        return started
