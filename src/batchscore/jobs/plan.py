"""Planning: inputs become an ordered list of mini-batches, deterministically.

File inputs are split into mini-batches of ``mini_batch_size`` files. Tabular inputs (CSV,
Parquet, a SQL query) into mini-batches of rows, or of about a size such as ``"10kb"``; a
mini-batch never crosses a file boundary. With ``partition_keys`` each distinct combination of
key values is one mini-batch. Every item is plain JSON, so the plan is stored in the state
database. The readers (byte ranges of CSV files, row groups of Parquet files, SQL snapshots)
live in :mod:`batchscore.io`, shared with the tabular job kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, SpecError
from ..redact import safe_url
from ..storage import Store
from .spec import JobSpec

if TYPE_CHECKING:
    import pandas as pd

# The readers (..io: pandas, pyarrow) are imported where rows are planned or read, not with
# this module: the engine's modules load it, and a command that reads no data (`job list`)
# should not pay pandas' import (0.7 s here).

__all__ = ["PlannedBatch", "plan_files", "plan_minibatches", "read_batch", "read_table"]


@dataclass(frozen=True)
class PlannedBatch:
    items: list[Any]
    n_items: int


def plan_minibatches(spec: JobSpec, urls: list[str], system: Store | None = None
                     ) -> list[PlannedBatch]:
    """Split the expanded input ``urls`` into mini-batches, in input order. A SQL input
    (``input_format: sql``, one database URL, ``options.query``) is run once and kept as a
    snapshot in the ``system`` store; its mini-batches are row ranges of the snapshot."""
    if spec.input_format == "files":
        return list(plan_files(spec, urls))
    from ..io import files

    fmt = _format(spec)
    source = None
    if spec.input_format == "sql":
        source, urls = _snapshot(spec, urls, system)
    if spec.partition_keys:
        return _plan_partitions(spec, urls, fmt)
    batches: list[PlannedBatch] = []
    for url in urls:
        plan = files.plan_file(url, fmt, spec.mini_batch_size, spec.input_encoding, source)
        batches.extend(PlannedBatch(items=[item], n_items=n) for item, n in plan.batches)
    return batches


def plan_files(spec: JobSpec, urls: list[str]) -> Iterator[PlannedBatch]:
    """File inputs in mini-batches of ``mini_batch_size`` files, made as they are consumed
    (a million of them are streamed into the state database, never held as a list). The
    spec is checked at once, before the first mini-batch is asked for."""
    if spec.partition_keys:
        raise SpecError("partition_keys need tabular inputs (input_format csv, parquet "
                        "or sql)")
    if not isinstance(spec.mini_batch_size, int):
        raise SpecError(
            f"mini_batch_size for file inputs is a number of files, "
            f"not {spec.mini_batch_size!r}"
        )
    size = spec.mini_batch_size
    return (PlannedBatch(items=urls[i : i + size], n_items=len(urls[i : i + size]))
            for i in range(0, len(urls), size))


def _format(spec: JobSpec) -> str:
    return "parquet" if spec.input_format == "sql" else spec.input_format


def _snapshot(spec: JobSpec, urls: list[str], system: Store | None) -> tuple[str, list[str]]:
    from ..io import sql

    if len(urls) != 1 or not sql.is_database_url(urls[0]):
        raise InputError(f"input_format sql takes one database URL as input, got {urls}")
    if system is None:
        raise SpecError("a SQL input needs the system store to keep its snapshot")
    query = sql.check_query(spec.options.get("query"))
    rows = spec.mini_batch_size if isinstance(spec.mini_batch_size, int) \
        else sql.DEFAULT_SQL_ROW_GROUP
    url, _ = sql.snapshot_query(urls[0], query, system, rows,
                                    spec.options.get("sql_limits"))
    return f"{safe_url(urls[0])} (query)", [url]


def read_table(spec: JobSpec, url: str, start: int | None = None, stop: int | None = None
               ) -> pd.DataFrame:
    """Rows ``start:stop`` of one tabular input file as a DataFrame."""
    from ..io import files

    return files.read_rows(url, _format(spec), spec.input_encoding, start, stop)


def read_batch(spec: JobSpec, item: dict[str, Any]) -> pd.DataFrame:
    """The rows of one planned row-range item (items of older plans carry no format)."""
    from ..io import files

    if "format" in item:
        return files.read_item(item, spec.input_encoding)
    return read_table(spec, item["url"], item["start"], item["stop"])


def _plan_partitions(spec: JobSpec, urls: list[str], fmt: str) -> list[PlannedBatch]:
    import pandas as pd

    from ..io import files

    frames = []
    for url in urls:
        # clear errors for unreadable files; an empty one has no rows (nor columns to check)
        if files.plan_file(url, fmt, 1 << 62, spec.input_encoding).rows == 0:
            continue
        frame = files.read_rows(url, fmt, spec.input_encoding)
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
        batches.append(PlannedBatch(items=[{"partition": key, "urls": urls, "format": fmt}],
                                    n_items=int(n)))
    return batches


def _plain(value: Any) -> Any:
    """NumPy scalars to plain Python values, for JSON; a missing value (NaN) to None, which
    the worker matches with ``isna`` (NaN equals nothing, and is not valid JSON)."""
    import pandas as pd

    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
