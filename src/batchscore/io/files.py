"""Tabular input files (CSV, Parquet) in any store, planned into row ranges and read back.

Planning reads as little as it can (a Parquet file's footer; one pass over a CSV file's bytes),
and every mini-batch is then read without touching the rows before it: a run of row groups
(:mod:`.parquet`) or a byte range (:mod:`.csv`). Items are plain JSON (they are stored in the
state database).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import InputError
from . import csv, parquet
from .sizes import rows_per_batch

__all__ = ["FORMATS", "FilePlan", "file_format", "plan_file", "read_item", "read_rows"]

FORMATS = ("csv", "parquet")
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")


def file_format(url: str, declared: str | None = None) -> str:
    """``csv`` or ``parquet`` for an input file: ``declared`` when it names one, else from
    the file's suffix."""
    if declared in FORMATS:
        return str(declared)
    name = url.rsplit("/", 1)[-1].lower()
    if name.endswith(_COMPRESSED):
        raise InputError(f"input {url}: compressed files cannot be split into mini-batches; "
                         "decompress it or convert it to Parquet")
    if name.endswith(parquet.SUFFIXES):
        return "parquet"
    if name.endswith(csv.SUFFIXES):
        return "csv"
    raise InputError(f"input {url}: cannot tell its format from its name; name it *.csv or "
                     "*.parquet, or set input_format (csv or parquet)")


@dataclass(frozen=True)
class FilePlan:
    """One input file planned: its row ranges ``(item, rows)`` in order, and its columns."""

    batches: list[tuple[dict[str, Any], int]]
    columns: list[str]
    rows: int


def plan_file(url: str, fmt: str, size: int | str, encoding: str = "utf-8",
              source: str | None = None) -> FilePlan:
    """Split one input file into row ranges of ``size`` rows (or bytes), in file order.
    ``source`` names the input in rejected-row reports (the SQL query of a snapshot)."""
    if fmt == "parquet":
        meta, nbytes = parquet.metadata(url)
        step = rows_per_batch(size, meta.num_rows, nbytes)
        return FilePlan(parquet.plan_row_groups(url, meta, step, source),
                        list(meta.schema.to_arrow_schema().names), meta.num_rows)
    layout = csv.scan_csv(url, encoding)
    step = rows_per_batch(size, layout.rows, layout.size)
    return FilePlan(csv.plan_ranges(url, layout, step), layout.columns, layout.rows)


def read_item(item: dict[str, Any], encoding: str = "utf-8",
              columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of one planned item as a DataFrame indexed by their row numbers in the input;
    ``columns`` (when given) limits what is read to those of them the input has."""
    if item.get("format") == "parquet" and "row_groups" in item:
        return parquet.read_item(item, columns)
    if item.get("format") == "csv":
        return csv.read_item(item, encoding, columns)
    fmt = item.get("format") or file_format(item["url"])
    return read_rows(item["url"], fmt, encoding, item.get("start"), item.get("stop"))


def read_rows(url: str, fmt: str, encoding: str = "utf-8", start: int | None = None,
              stop: int | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of one input file (all of it without them), read directly: only
    the row groups (Parquet) it needs, or rows from the start (CSV)."""
    if fmt == "parquet":
        return parquet.read_rows(url, start, stop)
    return csv.read_rows(url, encoding, start, stop)
