"""Planning: inputs become an ordered list of mini-batches, deterministically.

File inputs are split into mini-batches of ``mini_batch_size`` files. Tabular inputs (CSV,
Parquet) into mini-batches of rows, or of about a size such as ``"10kb"``; a mini-batch never
crosses a file boundary. With ``partition_keys`` each distinct combination of key values is
one mini-batch. Every item is plain JSON, so the plan is stored in the state database.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from ..errors import InputError, SpecError
from .spec import JobSpec, parse_size

__all__ = ["PlannedBatch", "plan_minibatches", "read_table"]


@dataclass(frozen=True)
class PlannedBatch:
    items: list[Any]
    n_items: int


def plan_minibatches(spec: JobSpec, urls: list[str]) -> list[PlannedBatch]:
    """Split the expanded input ``urls`` into mini-batches, in input order."""
    if spec.input_format == "files":
        if spec.partition_keys:
            raise SpecError("partition_keys need tabular inputs (input_format csv or parquet)")
        if not isinstance(spec.mini_batch_size, int):
            raise SpecError(
                f"mini_batch_size for file inputs is a number of files, "
                f"not {spec.mini_batch_size!r}"
            )
        size = spec.mini_batch_size
        return [
            PlannedBatch(items=urls[i : i + size], n_items=len(urls[i : i + size]))
            for i in range(0, len(urls), size)
        ]
    if spec.partition_keys:
        return _plan_partitions(spec, urls)
    batches: list[PlannedBatch] = []
    for url in urls:
        rows, nbytes = _count_rows(spec, url)
        step = _rows_per_batch(spec.mini_batch_size, rows, nbytes)
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            batches.append(PlannedBatch(items=[{"url": url, "start": start, "stop": stop}],
                                        n_items=stop - start))
    return batches


def _rows_per_batch(size: int | str, rows: int, nbytes: int) -> int:
    if isinstance(size, int):
        return size
    if rows == 0:
        return 1
    per_row = max(1.0, nbytes / rows)
    return max(1, int(parse_size(size) / per_row))


def _count_rows(spec: JobSpec, url: str) -> tuple[int, int]:
    fs, path = url_to_fs(url)
    nbytes = int(fs.size(path) or 0)
    if spec.input_format == "parquet":
        try:
            with fs.open(path, "rb") as fh:
                return pq.ParquetFile(fh).metadata.num_rows, nbytes
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(f"input {url}: not a readable Parquet file: {exc}") from None
    rows = 0
    try:
        with fs.open(path, "rb") as fh:
            for chunk in pd.read_csv(fh, chunksize=65536, encoding=spec.input_encoding):
                rows += len(chunk)
    except UnicodeDecodeError:
        at = _first_bad_byte(fs, path, spec.input_encoding)
        where = f" at byte {at}" if at is not None else ""
        raise InputError(
            f"input {url}: not valid {spec.input_encoding} text{where} "
            f"(set input_encoding if the file uses another encoding)"
        ) from None
    except pd.errors.EmptyDataError:
        return 0, nbytes
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"input {url}: not a readable CSV file: {exc}") from None
    return rows, nbytes


def _first_bad_byte(fs: Any, path: str, encoding: str) -> int | None:
    """The offset in the file of the first byte that is not valid ``encoding``.

    pandas reports offsets within its own buffers, so the file is decoded again here.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    consumed = 0
    with fs.open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return consumed - pending + exc.start
            if not chunk:
                return None
            consumed += len(chunk)


def read_table(spec: JobSpec, url: str, start: int | None = None, stop: int | None = None
               ) -> pd.DataFrame:
    """Rows ``start:stop`` of one tabular input file as a DataFrame."""
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as fh:
        if spec.input_format == "parquet":
            table = pq.read_table(fh)
            if start is not None:
                table = table.slice(start, (stop or table.num_rows) - start)
            return table.to_pandas()
        if start is None:
            return pd.read_csv(fh, encoding=spec.input_encoding)
        frame = pd.read_csv(
            fh,
            encoding=spec.input_encoding,
            skiprows=range(1, start + 1),
            nrows=(stop - start) if stop is not None else None,
        )
        frame.index = range(start, start + len(frame))
        return frame


def _plan_partitions(spec: JobSpec, urls: list[str]) -> list[PlannedBatch]:
    frames = []
    for url in urls:
        _, nbytes = _count_rows(spec, url)  # clear errors for unreadable files
        if nbytes == 0:
            continue  # an empty file has no rows (and no columns to check)
        frame = read_table(spec, url)
        missing = [k for k in spec.partition_keys if k not in frame.columns]
        if missing:
            raise InputError(
                f"input {url}: partition key column(s) {missing} not found; "
                f"columns are {list(frame.columns)}"
            )
        frames.append(frame[spec.partition_keys])
    if not frames:
        return []
    keys = pd.concat(frames, ignore_index=True)
    counts = keys.groupby(spec.partition_keys, sort=True, dropna=False).size()
    batches = []
    for values, n in counts.items():
        tup = values if isinstance(values, tuple) else (values,)
        key = {k: _plain(v) for k, v in zip(spec.partition_keys, tup, strict=True)}
        batches.append(PlannedBatch(items=[{"partition": key, "urls": urls}], n_items=int(n)))
    return batches


def _plain(value: Any) -> Any:
    """NumPy scalars to plain Python values, for JSON; a missing value (NaN) to None, which
    the worker matches with ``isna`` (NaN equals nothing, and is not valid JSON)."""
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
