"""The data store through the API: uploads of inputs (operators) and downloads through signed
links (no token: the link is the permission)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from fsspec.core import url_to_fs
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ...apimodels import Uploaded
from ...errors import InputError
from ...pipelines import data_url, resolve_data_path
from ...state.tables import jobs as jobs_table
from ...state.tables import pipeline_runs
from ...workspace import Workspace
from ..context import service_of, ws_of
from ..deps import Operator
from ..links import check_link

__all__ = ["SERVICE_PREFIXES", "content_disposition", "router", "upload_name"]

router = APIRouter()

_MAX_NAME_BYTES = 255  # one file or folder name (what local filesystems allow)
_MAX_PATH_CHARS = 1024
# Only the service writes here: stream partitions and inference logs (and every job's
# output, looked up in the state database); an operator's upload may not replace them.
SERVICE_PREFIXES = ("streams/", "inference-logs/")


def upload_name(path: str) -> str:
    """``path`` of an upload, checked as names: non-empty parts without leading or trailing
    spaces (never silently stripped), each at most 255 bytes; else InputError (400)."""
    if len(path) > _MAX_PATH_CHARS:
        raise InputError(f"path is {len(path)} characters long; at most {_MAX_PATH_CHARS}")
    for part in path.split("/"):
        if part != part.strip():
            raise InputError(f"path {path!r}: the name {part!r} begins or ends with spaces; "
                             "rename it")
        if len(part.encode("utf-8")) > _MAX_NAME_BYTES:
            raise InputError(f"path {path[:60]!r}...: a name is longer than "
                             f"{_MAX_NAME_BYTES} bytes")
    return path


def _service_owned(ws: Workspace, rel: str) -> str | None:
    """Why ``rel`` (a data-store path) is the service's to write, or None."""
    if any(rel.startswith(p) or rel == p.rstrip("/") for p in SERVICE_PREFIXES):
        return f"{rel.split('/', 1)[0]}/ is written by the service only"
    target = data_url(ws, rel)
    with ws.engine.connect() as conn:
        outputs = {row[0] for row in conn.execute(select(jobs_table.c.output_url))}
        outputs |= {row[0] for row in conn.execute(select(pipeline_runs.c.output_url))
                    if row[0]}
    for out in outputs:
        base = out.rstrip("/")
        if target == base or target.startswith(base + "/"):
            return "it is a job's output, written by the service only"
    return None


@router.put("/data/{path:path}", status_code=201, tags=["data"], response_model=Uploaded)
async def upload(request: Request, who: Operator, path: str) -> dict[str, Any]:
    """Upload an input into the data store (operators); the body is the file. It appears
    under its name only when complete, so a trigger never sees half a file. Job outputs,
    stream partitions and inference logs are the service's: operators cannot write there."""
    ws = ws_of(request)
    rel = resolve_data_path(ws, upload_name(path), "path")
    if rel.endswith("/"):
        raise InputError(f"path {path!r} names a folder; give a file name")
    if not who.can("admin"):
        owned = await run_in_threadpool(_service_owned, ws, rel)
        if owned:
            raise HTTPException(403, f"path {rel!r} cannot be written by an operator: {owned}")
    fs, final = url_to_fs(data_url(ws, rel))
    parent = final.rsplit("/", 1)[0]
    try:
        if fs.isdir(final):
            raise InputError(f"path {rel!r} is a folder; give a file name")
        if parent:
            above = parent
            while above and not fs.exists(above):
                above = above.rsplit("/", 1)[0] if "/" in above else ""
            if above and not fs.isdir(above):
                name = above[len(final) - len(rel):]
                raise InputError(f"path {rel!r}: {name!r} is a file, not a folder")
            fs.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise InputError(f"path {rel!r} cannot be written: {exc.strerror or exc}") from None
    tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
    size = 0
    try:
        with fs.open(tmp, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                fh.write(chunk)
        fs.mv(tmp, final)
    except OSError as exc:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise InputError(f"path {rel!r} cannot be written: {exc.strerror or exc}") from None
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
    return {"path": rel, "size": size}


@router.get("/download", tags=["data"])
def download(request: Request, path: str, expires: int, sig: str) -> StreamingResponse:
    """Download a file of the data store through a signed link (no token needed)."""
    service = service_of(request)
    ws = service.ws
    rel = resolve_data_path(ws, path, "path")
    check_link(ws, rel, expires, sig, max_ttl=service.config.link_max_ttl)
    fs, full = url_to_fs(data_url(ws, rel))
    if not fs.isfile(full):
        raise HTTPException(404, f"{rel} does not exist")

    def chunks() -> Iterator[bytes]:
        with fs.open(full, "rb") as fh:
            while block := fh.read(1024 * 1024):
                yield block

    name = rel.rsplit("/", 1)[-1]
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"Content-Disposition": content_disposition(name)})


def content_disposition(name: str) -> str:
    """``attachment`` with ``name``: an ASCII fallback, and the exact name in RFC 5987 form
    (``filename*=UTF-8''...``) so that any name travels in a Latin-1 header."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
