"""Listing a job's inputs in memory proportional to their names alone.

:func:`batchscore.storage.expand_inputs` lists folders and globs as a stream (``os.scandir``
for local ones, fsspec's ``walk`` folder by folder for remote stores), holding only the URLs:
not the information record per file that fsspec's ``find`` and ``glob`` build first (a
folder of a million files cost about a gigabyte at its peak that way).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..storage import expand_inputs

__all__ = ["list_inputs"]


def list_inputs(patterns: Sequence[str]) -> list[str]:
    """The file URLs of ``patterns``, as :func:`~batchscore.storage.expand_inputs` gives
    them (it raises the error for a pattern that matches nothing)."""
    return expand_inputs(patterns)
