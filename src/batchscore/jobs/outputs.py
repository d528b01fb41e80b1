"""The job's output: parts assembled in input order, committed only when complete.

Nothing is written to the output location until the job has finished: the parts live in the
system store, the assembled file is written under a temporary name and renamed. A marker,
``.batchscore-job.json``, written before the rename, records which job owns the output, so
that an interrupted commit can be finished by the same job and a finished output is never
overwritten by accident.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from fsspec.core import url_to_fs

from ..crash import crash_point
from ..errors import OutputExistsError
from ..storage import Store, to_url

__all__ = ["MARKER", "check_output", "commit_output", "output_owner"]

MARKER = ".batchscore-job.json"


def output_owner(output_url: str) -> str | None:
    """The id of the job whose output is at ``output_url``, if any."""
    fs, path = url_to_fs(to_url(output_url))
    marker = f"{path.rstrip('/')}/{MARKER}"
    if not fs.exists(marker):
        return None
    try:
        return str(json.loads(fs.cat_file(marker))["job"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


def check_output(output_url: str, file_name: str | None, overwrite: bool,
                 job_id: str | None = None) -> None:
    """Refuse an output location that holds a finished output, unless ``overwrite``."""
    if overwrite:
        return
    fs, path = url_to_fs(to_url(output_url))
    owner = output_owner(output_url)
    if owner is not None and owner == job_id:
        return
    target = f"{path.rstrip('/')}/{file_name}" if file_name else None
    if owner is not None or (target and fs.exists(target)):
        what = target if target and fs.exists(target) else f"{path} (written by job {owner})"
        raise OutputExistsError(
            f"output location {output_url} already holds a finished output: {what}; "
            "pass --overwrite to replace it"
        )
    if fs.exists(path) and not fs.isdir(path):
        raise OutputExistsError(f"output location {output_url} is a file, not a folder")


def commit_output(
    job_id: str,
    output_url: str,
    file_name: str | None,
    system: Store,
    parts: Iterable[str],
    staging: Path | None,
) -> None:
    """Assemble ``parts`` (system store paths, in order) into ``file_name`` at ``output_url``,
    and copy what the script wrote to its staging folder beside it."""
    fs, out = url_to_fs(to_url(output_url))
    out = out.rstrip("/")
    fs.makedirs(out, exist_ok=True)
    marker = {"job": job_id, "file": file_name, "committed_at": time.time()}
    fs.pipe_file(f"{out}/{MARKER}", json.dumps(marker).encode())
    if staging is not None and staging.is_dir():
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                rel = path.relative_to(staging).as_posix()
                _put_atomic(fs, str(path), f"{out}/{rel}")
    crash_point("marker-written")
    if file_name is None:
        return
    tmp = f"{out}/.{file_name}.partial-{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "wb") as sink:
        for part in parts:
            with system.open(part, "rb") as src:
                while chunk := src.read(1 << 20):
                    sink.write(chunk)
    fs.mv(tmp, f"{out}/{file_name}")


def _put_atomic(fs, local: str, remote: str) -> None:  # type: ignore[no-untyped-def]
    parent = remote.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{remote}.partial-{uuid.uuid4().hex[:8]}"
    fs.put_file(local, tmp)
    fs.mv(tmp, remote)
