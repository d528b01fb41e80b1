"""Stores: places for blobs, reached through fsspec (``file://``, ``memory://``, ``az://``, ``s3://``).

A workspace has two: **data** (inputs and outputs) and **system** (scripts, job scratch, parts,
logs). :class:`Store` adds what batchscore needs on top of an fsspec filesystem: paths relative
to the store's root, and writes that never leave a partial object at the final name.
"""

from __future__ import annotations

import glob as _glob
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

from .errors import InputError

__all__ = ["Store", "expand_inputs", "is_local_url", "local_copy", "to_url"]


def to_url(location: str | os.PathLike[str]) -> str:
    """A URL for ``location``: URLs stay as they are, local paths become absolute ``file://``."""
    text = os.fspath(location)
    if "://" in text:
        return text
    return "file://" + str(Path(text).expanduser().absolute())


def is_local_url(url: str) -> bool:
    return to_url(url).startswith("file://")


class Store:
    """A folder in some fsspec filesystem, addressed with ``/``-separated relative paths."""

    def __init__(self, url: str, name: str = "store") -> None:
        self.url = to_url(url).rstrip("/")
        self.name = name
        self.fs: fsspec.AbstractFileSystem
        self.fs, self.root = url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"Store({self.name}={self.url!r})"

    @property
    def is_local(self) -> bool:
        return self.url.startswith("file://")

    def path(self, *parts: str) -> str:
        """The filesystem path of ``parts`` inside this store."""
        rel = "/".join(p.strip("/") for p in parts if p)
        return f"{self.root}/{rel}" if rel else self.root

    def url_of(self, *parts: str) -> str:
        rel = "/".join(p.strip("/") for p in parts if p)
        return f"{self.url}/{rel}" if rel else self.url

    def local_path(self, *parts: str) -> Path:
        """The local path of ``parts``; only for local (``file://``) stores."""
        if not self.is_local:
            raise ValueError(f"{self} is not a local store")
        return Path(self.path(*parts))

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self.path(*parts)))

    def open(self, rel: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        if "w" in mode or "a" in mode:
            self.fs.makedirs(self.path(_parent(rel)), exist_ok=True)
        return self.fs.open(self.path(rel), mode, **kwargs)  # type: ignore[no-any-return]

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))  # type: ignore[no-any-return]

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel`` through a temporary name, so readers never see a part."""
        final = self.path(rel)
        self.fs.makedirs(self.path(_parent(rel)), exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, final)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def put_file(self, local: str | os.PathLike[str], rel: str) -> None:
        """Copy a local file to ``rel`` through a temporary name."""
        final = self.path(rel)
        self.fs.makedirs(self.path(_parent(rel)), exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.put_file(os.fspath(local), tmp)
        self.fs.mv(tmp, final)

    def list(self, rel: str = "") -> list[str]:
        """Relative paths of the files below ``rel`` (recursive), sorted."""
        base = self.path(rel)
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        return sorted(f[len(self.root) + 1 :] for f in found)

    def remove(self, rel: str, recursive: bool = False) -> None:
        path = self.path(rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)


def _parent(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Expand input URIs and globs into a de-duplicated list of file URLs: the files of each
    pattern sorted, the patterns in the order given.

    A folder stands for every file below it, except hidden ones (a name starting with ``.``,
    or below such a folder). Raises :class:`InputError` naming the pattern that matches
    nothing.
    """
    urls: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        matched = _expand_one(pattern)
        if not matched:
            raise InputError(f"input {pattern!r} matches no file")
        for url in matched:
            if url not in seen:
                seen.add(url)
                urls.append(url)
    return urls


def _hidden(rel: str) -> bool:
    """True for a file that is, or lies below, a dot-file or dot-folder (``.git/``, ...)."""
    return any(part.startswith(".") for part in rel.split("/") if part)


def _expand_one(pattern: str) -> list[str]:
    url = to_url(pattern)
    try:
        fs, path = url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"input {pattern!r}: {exc}") from None
    protocol = url.split("://", 1)[0]
    if _glob.has_magic(path):
        # Like a shell, a wildcard does not match hidden names unless the pattern says so.
        parts = path.split("/")
        first = next(i for i, part in enumerate(parts) if _glob.has_magic(part))
        base = "/".join(parts[:first])
        dots = any(part.startswith(".") for part in parts[first:])
        found = [p for p in fs.glob(path)
                 if fs.isfile(p) and (dots or not _hidden(p[len(base) :]))]
    elif fs.isdir(path):
        base = path.rstrip("/")
        found = [p for p in fs.find(path) if not _hidden(p[len(base) :])]
    elif fs.exists(path):
        found = [path]
    else:
        return []
    return sorted(f"{protocol}://{p}" if protocol != "file" else f"file://{p}" for p in found)


def local_copy(url: str, scratch: Path, recursive: bool = False) -> str:
    """A local path for ``url``: local files as they are, remote ones (a folder with
    ``recursive``) downloaded once into ``scratch``."""
    url = to_url(url)
    if url.startswith("file://"):
        return url_to_fs(url)[1]
    fs, path = url_to_fs(url)
    target = scratch / path.lstrip("/")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
        if recursive:
            fs.get(path.rstrip("/") + "/", str(tmp), recursive=True)
        else:
            fs.get_file(path, str(tmp))
        tmp.replace(target)
    return str(target)
