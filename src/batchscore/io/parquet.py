"""Parquet files, read by row groups: the footer at planning, and at scoring only the row groups
that a mini-batch covers. A row group larger than a mini-batch is split into row slices, and a
worker keeps the last row groups it decoded, so its slices are decoded once. Also the Arrow
schemas of tables that must become one file (:func:`unify_schemas`, :func:`conform`).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ..errors import InputError

__all__ = ["conform", "metadata", "plan_row_groups", "read_item", "read_rows", "unify_schemas"]

SUFFIXES = (".parquet", ".pq", ".parq")


def metadata(url: str) -> tuple[pq.FileMetaData, int]:
    """The footer of the Parquet file at ``url`` and the file's size in bytes."""
    fs, path = url_to_fs(url)
    nbytes = int(fs.size(path) or 0)
    try:
        with fs.open(path, "rb") as fh:
            return pq.ParquetFile(fh).metadata, nbytes
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"input {url}: not a readable Parquet file: {exc}") from None


def plan_row_groups(url: str, meta: pq.FileMetaData, step: int, source: str | None
                    ) -> list[tuple[dict[str, Any], int]]:
    """The file's row ranges of ``step`` rows at most ``(item, rows)``, in order: runs of
    whole row groups, and slices of a row group larger than ``step``. ``source`` names the
    input in rejected-row reports (the SQL query of a snapshot)."""
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    out: list[tuple[dict[str, Any], int]] = []

    def add(first: int, last: int, rg_start: int, start: int, stop: int) -> None:
        item: dict[str, Any] = {"url": url, "format": "parquet", "start": start, "stop": stop,
                                "row_groups": [first, last], "rg_start": rg_start}
        if source:
            item["source"] = source
        out.append((item, stop - start))

    pos = 0  # first row of row group i
    pending: tuple[int, int] | None = None  # (first row group, its first row)
    pending_rows = 0
    for i, n in enumerate(groups):
        if n == 0:
            pos += n
            continue
        if pending is not None and pending_rows + n > step:
            add(pending[0], i - 1, pending[1], pending[1], pos)
            pending, pending_rows = None, 0
        if n > step:  # larger than a mini-batch: slices of it
            for start in range(pos, pos + n, step):
                add(i, i, pos, start, min(pos + n, start + step))
        else:
            if pending is None:
                pending = (i, pos)
            pending_rows += n
        pos += n
    if pending is not None:
        add(pending[0], len(groups) - 1, pending[1], pending[1], pos)
    return out


_rg_cache = threading.local()  # the last row groups this thread decoded (for slices)


def read_item(item: dict[str, Any], columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of one planned item (:func:`plan_row_groups`), indexed by their row numbers."""
    url = item["url"]
    first, last = item["row_groups"]
    start, stop, rg_start = item["start"], item["stop"], item["rg_start"]
    key = (url, first, last, tuple(columns) if columns is not None else None)
    cached = getattr(_rg_cache, "entry", None)
    if cached is not None and cached[0] == key:
        table = cached[1]
    else:
        fs, path = url_to_fs(url)
        # a local file is read by Arrow itself, not through a Python file object
        with (nullcontext(path) if isinstance(fs, LocalFileSystem) else fs.open(path, "rb")
              ) as source:
            pf = pq.ParquetFile(source)
            present = pf.schema_arrow.names
            cols = [c for c in columns if c in present] if columns is not None else None
            table = pf.read_row_groups(list(range(first, last + 1)), columns=cols)
        if stop - start < table.num_rows:  # a slice: its neighbours will want the rest
            _rg_cache.entry = (key, table)
    if stop - start < table.num_rows:
        table = table.slice(start - rg_start, stop - start)
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def read_rows(url: str, start: int | None = None, stop: int | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of the file (all of it without them), reading only the row groups
    they are in."""
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as fh:
        pf = pq.ParquetFile(fh)
        if start is None:
            return pf.read().to_pandas()
        stop = pf.metadata.num_rows if stop is None else stop
        first_row, groups, pos = None, [], 0
        for i in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(i).num_rows
            if pos + n > start and pos < stop:
                groups.append(i)
                first_row = pos if first_row is None else first_row
            pos += n
        if not groups:
            frame = pf.schema_arrow.empty_table().to_pandas()
        else:
            table = pf.read_row_groups(groups)
            frame = table.slice(start - (first_row or 0), stop - start).to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        return frame


# -- schemas ---------------------------------------------------------------------------------

def unify_schemas(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for tables whose types differ (an integer column that held a missing value
    in one mini-batch is a float there): numbers widen, and columns of types that cannot be
    reconciled become strings."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    names: list[str] = []
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            if field.name not in types:
                names.append(field.name)
                types[field.name] = []
            types[field.name].append(field.type)
    fields = []
    for name in names:
        try:
            merged = pa.unify_schemas([pa.schema([(name, t)]) for t in types[name]],
                                      promote_options="permissive")
            fields.append(merged.field(0))
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields, metadata=schemas[0].metadata)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns, in its order and types (missing ones null)."""
    if table.schema.equals(schema, check_metadata=False):
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                column = column.cast(field.type, safe=False) \
                    if not pa.types.is_string(field.type) else _as_string(column)
        else:
            column = pa.nulls(table.num_rows, field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    try:
        return column.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        values = [None if v is None else str(v) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, type=pa.string())])
