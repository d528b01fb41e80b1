"""Listing a job's inputs in memory proportional to their names alone.

:func:`batchscore.storage.expand_inputs` lists a folder with fsspec's ``find``, which builds
an information record (a ``stat``) for every file before it keeps the names: a folder of a
million files costs about a gigabyte at its peak. A local folder given as it is (no wildcard)
is listed here with ``os.scandir`` instead: only the URLs are held, hidden ones pruned as they
are met. Everything else (wildcards, remote stores, several patterns) goes to ``expand_inputs``.
The result is the same list, in the same order.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from ..storage import expand_inputs, to_url

__all__ = ["list_inputs"]


def list_inputs(patterns: Sequence[str]) -> list[str]:
    """The file URLs of ``patterns``, as :func:`~batchscore.storage.expand_inputs` gives
    them."""
    if len(patterns) == 1:
        url = to_url(patterns[0])
        path = url[len("file://"):] if url.startswith("file://") else None
        if path and not glob.has_magic(path) and os.path.isdir(path):
            found = _walk(path.rstrip("/") or "/")
            if found:
                return found
    return expand_inputs(patterns)  # also: the error for a pattern that matches nothing


def _walk(top: str) -> list[str]:
    """Every file below ``top`` but hidden ones, sorted. One folder's entries are read as a
    stream (no list of a million names beside the URLs); a link to a folder is listed, not
    followed, as fsspec's ``find`` does."""
    urls: list[str] = []
    folders = [top]
    while folders:
        folder = folders.pop()
        prefix = "file://" + (folder if folder != "/" else "")
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                else:
                    urls.append(f"{prefix}/{entry.name}")
    urls.sort()
    return urls
