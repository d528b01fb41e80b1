"""Listing a job's inputs in memory proportional to their names alone.

:func:`batchscore.storage.expand_inputs` lists a folder with fsspec's ``find``, which builds
an information record (a ``stat``) for every file before it keeps the names: a folder of a
million files costs about a gigabyte at its peak. A local folder given as it is (no wildcard)
is listed here with ``os.walk`` instead: only names are held, hidden ones pruned as they are
met. Everything else (wildcards, remote stores, several patterns) goes to ``expand_inputs``.
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
    urls: list[str] = []
    for root, dirs, files in os.walk(top):
        prefix = "file://" + (root if root != "/" else "")
        # as fsspec's find: a link to a folder is listed, not followed
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in links]
        urls.extend(f"{prefix}/{name}" for name in [*files, *links] if not name.startswith("."))
    urls.sort()
    return urls
