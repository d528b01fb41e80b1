"""A job's logs in the system store, under ``jobs/<id>/logs/``.

- ``overview.json``: mini-batches created, done, failed, pending; items; state. Rewritten as
  the job goes.
- ``events.jsonl``: structured events of the runner (started, retried, failed, finished).
- ``errors.txt``: the traceback of every failed attempt, with its mini-batch and worker.
- ``timings.jsonl``: one record per attempt: mini-batch, attempt, worker, start, end, items,
  outcome.
- ``workers/<worker>.stdout.txt`` and ``.stderr.txt``: everything each worker printed.

Everything written here passes through :func:`batchscore.redact.redact` first: URL passwords
and the values of secret environment variables never reach the files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import paths, telemetry
from ..redact import redact, redact_value
from ..storage import Store

__all__ = ["JobLogs"]


class JobLogs:
    """Appends to a job's log files; mirrors them to a remote system store on flush."""

    def __init__(self, system: Store, job_id: str) -> None:
        self.store = system
        self.prefix = paths.job_logs(job_id)
        if system.is_local:
            self.folder = system.local_path(self.prefix)
        else:
            self.folder = Path(tempfile.mkdtemp(prefix=f"batchscore-{job_id}-"))
            for name in (paths.EVENTS, paths.ERRORS, paths.TIMINGS):
                if system.exists(self.prefix, name):
                    (self.folder / name).write_bytes(system.read_bytes(f"{self.prefix}/{name}"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._dirty: set[str] = set()
        self._last_overview = 0.0

    def _append(self, name: str, text: str) -> None:
        with open(self.folder / name, "a", encoding="utf-8") as fh:
            fh.write(redact(text))
        self._dirty.add(name)

    def event(self, event: str, **fields: Any) -> None:
        record = redact_value({"time": round(time.time(), 6), "event": event, **fields})
        self._append(paths.EVENTS, json.dumps(record, default=str) + "\n")

    def error(self, idx: int, attempt: int, worker: str | None, outcome: str, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        header = f"=== mini-batch {idx} attempt {attempt} {outcome} on {worker or '?'} at {stamp}"
        self._append(paths.ERRORS, f"{header}\n{text.rstrip()}\n\n")

    def timings(self, records: list[dict[str, Any]]) -> None:
        if records:  # the secrets to mask are read from the environment once a call
            self._append(paths.TIMINGS,
                         "".join(json.dumps(r, default=str) + "\n"
                                 for r in redact_value(records)))
        telemetry.record_attempts(records)  # spans of the job's trace, when telemetry is on

    def overview(self, data: dict[str, Any], force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_overview < 1.0:
            return
        self._last_overview = now
        path = self.folder / paths.OVERVIEW
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(redact_value({**data, "updated_at": now}), indent=2,
                                  default=str))
        tmp.replace(path)
        self._dirty.add(paths.OVERVIEW)
        self.flush()

    def flush(self) -> None:
        if self.store.is_local:
            self._dirty.clear()
            return
        for name in sorted(self._dirty):
            self.store.put_file(self.folder / name, f"{self.prefix}/{name}")
        self._dirty.clear()

    def close(self) -> None:
        """Flush; a remote store's local copies are removed (a later JobLogs reads them back)."""
        self.flush()
        if not self.store.is_local:
            shutil.rmtree(self.folder, ignore_errors=True)
