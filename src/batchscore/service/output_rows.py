"""The rows of a finished tabular job's output (served as ``GET /api/v1/jobs/{id}/output/rows``).

A tabular job writes its output to a folder of part files (``part-00000.parquet`` ... or
``.csv``), to one ``.parquet`` / ``.csv`` file, or appends it to a SQL table (the job's
``options.table`` in the database its output URL names) beside other jobs' rows. This module
reads one page of those rows, only the columns asked for, and makes them JSON-safe: timestamps
become ISO 8601 strings, NaN and infinities become ``null``.

Parquet pages read only the row groups that overlap the page (the total comes from the files'
footers); CSV files are streamed in chunks; SQL pages are ``WHERE batchscore_job_id = :job``
with ``LIMIT``/``OFFSET``, ordered by every column so that pages are stable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from fsspec.core import url_to_fs

from ..errors import InputError, JobStateError, OutputGoneError, UsageError
from ..jobs import get_job
from ..storage import to_url
from ..tabular.writers import JOB_COLUMN
from ..workspace import Workspace

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "OutputGoneError", "OutputRows", "read_output_rows"]

DEFAULT_LIMIT = 5000
MAX_LIMIT = 50_000
_CSV_CHUNK = 50_000


@dataclass(frozen=True)
class OutputRows:
    """One page of a job's output rows."""

    job_id: str
    columns: list[str]
    rows: list[list[Any]]  # JSON-safe values
    total: int  # rows of the whole output
    offset: int
    truncated: bool  # more rows follow this page

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_output_rows(ws: Workspace, job_id: str, *, limit: int = DEFAULT_LIMIT,
                     offset: int = 0, columns: list[str] | None = None) -> OutputRows:
    """Rows ``offset`` to ``offset + limit`` of tabular job ``job_id``'s output.

    Raises :class:`~batchscore.errors.JobNotFoundError` (no such job), ``UsageError`` (not a
    tabular job, a limit/offset out of range, an unknown column), ``JobStateError`` (the job
    has not succeeded) and :class:`OutputGoneError` (its output is gone).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}; "
                         "page through larger outputs with offset")
    if offset < 0:
        raise UsageError(f"offset must be 0 or more, got {offset}")
    if columns is not None:
        columns = list(dict.fromkeys(c.strip() for c in columns))
        if not columns or any(not c for c in columns):
            raise UsageError("columns must be a comma-separated list of column names, "
                             "with no empty names")
    job = get_job(ws, job_id)
    if job.kind != "tabular":
        raise UsageError(f"job {job.id} is a {job.kind} job; only tabular jobs have output "
                         "rows")
    if job.state != "succeeded":
        why = f": {job.reason}" if job.reason and job.state != "running" else ""
        raise JobStateError(f"job {job.id} is {job.display_state}{why}; only a succeeded job's "
                            "output can be read")
    options = dict(job.spec.get("options") or {})
    if _is_sql(job.output_url, options):
        frame, names, total = _sql_page(job.id, job.output_url, options, columns, limit, offset)
    else:
        frame, names, total = _files_page(job.id, job.output_url, options, columns, limit,
                                          offset)
    rows = _json_rows(frame)
    return OutputRows(job_id=job.id, columns=names, rows=rows, total=total, offset=offset,
                      truncated=offset + len(rows) < total)


def _is_sql(url: str, options: dict[str, Any]) -> bool:
    from ..io.sql import is_database_url

    return options.get("output_format") == "sql" or bool(options.get("table")) \
        or is_database_url(url)


def _pick(job_id: str, available: list[str], wanted: list[str] | None) -> list[str]:
    if wanted is None:
        return available
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise UsageError(f"job {job_id}'s output has no column(s) {', '.join(unknown)}; "
                         f"its columns are {', '.join(available)}")
    return wanted


def _json_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """The values of ``frame`` as JSON-safe lists (ISO timestamps, null for NaN/inf)."""
    if frame.empty:
        return []
    text = frame.to_json(orient="split", index=False, date_format="iso", double_precision=15,
                         default_handler=str)
    return list(json.loads(text)["data"])


# --- files -----------------------------------------------------------------------------------


def _files_page(job_id: str, url: str, options: dict[str, Any], wanted: list[str] | None,
                limit: int, offset: int) -> tuple[pd.DataFrame, list[str], int]:
    fs, path = url_to_fs(to_url(url))
    if not fs.exists(path):
        raise OutputGoneError(f"the output of job {job_id} is gone: {url} does not exist")
    if fs.isdir(path):
        files = sorted(f for f in fs.ls(path, detail=False) if _is_part(f))
        if not files:
            raise OutputGoneError(f"the output folder of job {job_id} ({url}) holds no "
                                  "Parquet or CSV part files")
    else:
        files = [path]
    fmt = options.get("output_format")
    is_csv = fmt == "csv" or (fmt is None and files[0].lower().endswith(".csv"))
    if is_csv:
        return _csv_page(job_id, fs, files, wanted, limit, offset)
    return _parquet_page(job_id, fs, files, wanted, limit, offset)


def _is_part(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return not name.startswith(("_", ".")) and name.lower().endswith((".parquet", ".csv"))


def _parquet_page(job_id: str, fs: Any, files: list[str], wanted: list[str] | None,
                  limit: int, offset: int) -> tuple[pd.DataFrame, list[str], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names: list[str] | None = None
    pieces: list[pa.Table] = []
    start, end, seen = offset, offset + limit, 0
    for file in files:
        try:
            with fs.open(file, "rb") as fh:
                pf = pq.ParquetFile(fh)
                if names is None:
                    names = _pick(job_id, list(pf.schema_arrow.names), wanted)
                meta = pf.metadata
                for i in range(meta.num_row_groups):
                    n = meta.row_group(i).num_rows
                    lo, hi = seen, seen + n
                    seen = hi
                    if hi <= start or lo >= end:
                        continue
                    table = pf.read_row_group(i, columns=names)
                    a, b = max(start, lo) - lo, min(end, hi) - lo
                    pieces.append(table.slice(a, b - a))
        except (OSError, pa.ArrowException) as exc:
            raise OutputGoneError(f"the output of job {job_id} cannot be read: {file}: "
                                  f"{exc}") from None
    assert names is not None
    if not pieces:
        return pd.DataFrame(columns=names), names, seen
    table = pa.concat_tables(pieces, promote_options="permissive")
    return table.to_pandas(), names, seen


def _csv_page(job_id: str, fs: Any, files: list[str], wanted: list[str] | None,
              limit: int, offset: int) -> tuple[pd.DataFrame, list[str], int]:
    names: list[str] | None = None
    pieces: list[pd.DataFrame] = []
    start, end, seen = offset, offset + limit, 0
    for file in files:
        try:
            with fs.open(file, "rb") as fh:
                for chunk in _csv_chunks(fh):
                    if names is None:
                        names = _pick(job_id, [str(c) for c in chunk.columns], wanted)
                    lo, hi = seen, seen + len(chunk)
                    seen = hi
                    if hi <= start or lo >= end:
                        continue
                    a, b = max(start, lo) - lo, min(end, hi) - lo
                    pieces.append(chunk.iloc[a:b][names])
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise OutputGoneError(f"the output of job {job_id} cannot be read: {file}: "
                                  f"{exc}") from None
    if names is None:  # header-only files: no rows, but the columns are known
        with fs.open(files[0], "rb") as fh:
            try:
                header = [str(c) for c in pd.read_csv(fh, nrows=0).columns]
            except pd.errors.EmptyDataError:
                raise OutputGoneError(f"the output of job {job_id} holds no CSV header: "
                                      f"{files[0]}") from None
        names = _pick(job_id, header, wanted)
    if not pieces:
        return pd.DataFrame(columns=names), names, seen
    return pd.concat(pieces, ignore_index=True), names, seen


def _csv_chunks(fh: Any) -> Iterator[pd.DataFrame]:
    try:
        yield from pd.read_csv(fh, chunksize=_CSV_CHUNK)
    except pd.errors.EmptyDataError:
        return


# --- SQL -------------------------------------------------------------------------------------


def _sql_page(job_id: str, url: str, options: dict[str, Any], wanted: list[str] | None,
              limit: int, offset: int) -> tuple[pd.DataFrame, list[str], int]:
    from sqlalchemy import MetaData, Table, func, select
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    from ..io.sql import create_db_engine
    from ..redact import safe_url

    name = options.get("table")
    shown = safe_url(url)
    if not name:
        raise OutputGoneError(f"job {job_id} wrote to a database ({shown}) but its spec "
                              "names no table (options.table)")
    try:
        engine = create_db_engine(url, f"the output database of job {job_id}")
    except InputError as exc:
        raise OutputGoneError(str(exc)) from None
    try:
        with engine.connect() as conn:
            try:
                table = Table(str(name), MetaData(), autoload_with=conn)
            except NoSuchTableError:
                raise OutputGoneError(f"the output of job {job_id} is gone: table {name!r} "
                                      f"does not exist in {shown}") from None
            available = [c.name for c in table.columns]
            if JOB_COLUMN not in available:
                raise OutputGoneError(f"table {name!r} in {shown} has no {JOB_COLUMN} "
                                      "column; it is not a batchscore output")
            names = _pick(job_id, available, wanted)
            mine = table.c[JOB_COLUMN] == job_id
            total = int(conn.execute(select(func.count()).select_from(table).where(mine))
                        .scalar_one())
            query = (select(*[table.c[n] for n in names]).where(mine)
                     .order_by(*table.columns).limit(limit).offset(offset))
            frame = pd.DataFrame(conn.execute(query).fetchall(), columns=names)
    except SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise OutputGoneError(f"the output table {name!r} of job {job_id} cannot be read "
                              f"from {shown}: {message}") from None
    finally:
        engine.dispose()
    return frame, names, total
