"""Blobs of the data store as storage triggers see them: a path and a version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fsspec.core import url_to_fs

from ..pipelines.datastore import data_url
from ..workspace import Workspace

__all__ = ["Blob", "list_blobs"]


@dataclass(frozen=True)
class Blob:
    path: str  # relative to the data store
    version: str
    size: int


def _version(info: dict[str, Any]) -> str:
    etag = info.get("etag") or info.get("ETag")
    if etag:
        return str(etag).strip('"')
    mtime = info.get("mtime") or info.get("last_modified") or info.get("LastModified")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"{info.get('size')}:{mtime}"


def list_blobs(ws: Workspace, prefix: str) -> list[Blob]:
    """The blobs below ``prefix`` in the data store, with their versions, fresh (no cache)."""
    fs, base = url_to_fs(data_url(ws, ""))
    _, path = url_to_fs(data_url(ws, prefix))
    fs.invalidate_cache()
    base = base.rstrip("/")
    if not fs.exists(path):
        return []
    found = fs.find(path, detail=True)
    blobs = []
    for full, info in sorted(found.items()):
        if info.get("type") == "directory":
            continue
        rel = full[len(base):].lstrip("/") if base else full.lstrip("/")
        blobs.append(Blob(rel, _version(info), int(info.get("size") or 0)))
    return blobs
