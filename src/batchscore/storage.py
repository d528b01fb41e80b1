"""Stores: places for blobs, reached through fsspec (``file://``, ``memory://``, ``az://``, ``s3://``).

A workspace has two: **data** (inputs and outputs) and **system** (scripts, job scratch, parts,
logs). :class:`Store` adds what batchscore needs on top of an fsspec filesystem: paths relative
to the store's root, and writes that never leave a partial object at the final name.
"""

from __future__ import annotations

import glob as _glob
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.utils import glob_translate

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

    Listing holds the URLs and one folder's entries at a time, never a record per file: a
    local folder or glob is read with ``os.scandir`` as a stream, a remote one folder by
    folder through fsspec's ``walk`` (a million files cost their URLs, about 100 bytes each,
    where fsspec's ``find`` and ``glob`` build an information record for every file first).
    """
    patterns = list(patterns)
    urls: list[str] = []
    seen: set[str] | None = set() if len(patterns) > 1 else None  # one pattern: no repeats
    for pattern in patterns:
        matched = _expand_one(pattern)
        if not matched:
            raise InputError(f"input {pattern!r} matches no file")
        if seen is None:
            urls = matched
            continue
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
    prefix = f"{protocol}://"
    local = protocol == "file"
    if _glob.has_magic(path):
        # fsspec's glob, as a stream: the folder above the first wildcard is walked (no
        # deeper than the pattern reaches, unless it has ``**``) and each entry's path is
        # matched with fsspec's own translation of the pattern; only files are kept. Like a
        # shell, a wildcard does not match hidden names unless the pattern says so.
        parts = path.split("/")
        first = next(i for i, part in enumerate(parts) if _glob.has_magic(part))
        top = "/".join(parts[:first]) or ("/" if first else "")
        dots = any(part.startswith(".") for part in parts[first:])
        depth = None if "**" in path else len(parts) - first
        match = re.compile(glob_translate(path)).match
        found = [prefix + p for p, is_file in _entries(fs, local, top, depth, not dots)
                 if is_file() and match(p)]
    elif fs.isdir(path):
        # every entry that is not a folder (a link to one included), as fsspec's find gives
        found = [prefix + p for p, _ in _entries(fs, local, path.rstrip("/") or "/", None,
                                                 True)]
    elif fs.exists(path):
        found = [prefix + path]
    else:
        return []
    found.sort()
    return found


_Entry = tuple[str, Callable[[], bool]]  # a path, and whether it is a file (links followed)


def _entries(fs: fsspec.AbstractFileSystem, local: bool, top: str, depth: int | None,
             skip_hidden: bool) -> Iterator[_Entry]:
    """Every entry below ``top`` that is not a folder, walked as fsspec's ``walk`` does
    (links to folders are not followed; a folder that cannot be read is left out), at most
    ``depth`` levels down; with ``skip_hidden``, no name starting with ``.`` nor anything
    below one."""
    if local:
        yield from _local_entries(top, depth, skip_hidden)
        return
    for folder, dirs, files in fs.walk(top, maxdepth=depth, detail=True):
        if skip_hidden:
            for name in [d for d in dirs if d.startswith(".")]:
                del dirs[name]  # not walked
        for name, info in files.items():
            if not (skip_hidden and name.startswith(".")):
                yield info["name"], (lambda info=info: info.get("type") == "file")
        # a store's listings cache (s3fs, adlfs) would keep every folder's records: this
        # one has been read
        fs.invalidate_cache(folder)


def _local_entries(top: str, depth: int | None, skip_hidden: bool) -> Iterator[_Entry]:
    """:func:`_entries` of a local folder, one folder's entries read at a time as a stream
    (``os.scandir``): nothing is held but the folders still to read."""
    folders = [(top, 1)]
    while folders:
        folder, level = folders.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue  # as fsspec's walk: a folder that cannot be listed is left out
        with entries:
            for entry in entries:
                if skip_hidden and entry.name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if depth is None or level < depth:
                        folders.append((entry.path, level + 1))
                else:
                    yield entry.path, entry.is_file


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
