"""Tabular inputs: CSV and Parquet files in any store, and SQL queries, read in row ranges.

Planning reads as little as it can, and every mini-batch is then read without touching the
rows before it:

- **Parquet**: the footer only. A mini-batch is a run of consecutive row groups (read with
  ``ParquetFile.read_row_groups``); a row group larger than a mini-batch is split into row
  slices, and a worker keeps the last row group it decoded, so its slices are decoded once.
- **CSV**: the file is read once with NumPy to find where each record starts (quotes are
  tracked, so a quoted field holding a newline stays one record; blank lines are left out as
  pandas leaves them out), so a mini-batch is a byte range parsed with the header in front.
  The same pass checks the text encoding and that no row has more fields than the header.
  Files this scan cannot vouch for (a quote inside an unquoted field, ``\\r``-only line
  ends, an encoding such as UTF-16 that is not ASCII-compatible) fall back to counting rows
  with pandas and reading row ranges with ``skiprows``: correct, but slower.
- **SQL**: the query runs once, at planning; its result is written as Parquet into the system
  store under ``snapshots/<sha256>/result.parquet`` (content-addressed), and mini-batches are
  row ranges of that snapshot, so a resumed job reads exactly the rows it planned.

Items are plain JSON (they are stored in the state database). This module depends only on
pandas, pyarrow, SQLAlchemy and batchscore's errors and storage, so both the entry-script
kind (``jobs``) and the tabular kind use it.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from ..errors import InputError, SpecError
from ..paths import sql_snapshot
from ..redact import safe_url
from ..storage import Store

__all__ = [
    "DEFAULT_SQL_ROW_GROUP",
    "CsvLayout",
    "FilePlan",
    "create_db_engine",
    "engine_url",
    "file_format",
    "is_database_url",
    "plan_file",
    "read_item",
    "read_rows",
    "rows_per_batch",
    "safe_url",
    "scan_csv",
    "snapshot_query",
    "unify_schemas",
]

FORMATS = ("csv", "parquet")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv",)
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")
DEFAULT_SQL_ROW_GROUP = 65536
_BLOCK = 8 << 20  # bytes a CSV scan reads at a time
_MAX_RECORD = 64 << 20  # a longer record sends the file to the slow path

# -- formats ---------------------------------------------------------------------------------

def file_format(url: str, declared: str | None = None) -> str:
    """``csv`` or ``parquet`` for an input file: ``declared`` when it names one, else from
    the file's suffix."""
    if declared in FORMATS:
        return str(declared)
    name = url.rsplit("/", 1)[-1].lower()
    if name.endswith(_COMPRESSED):
        raise InputError(f"input {url}: compressed files cannot be split into mini-batches; "
                         "decompress it or convert it to Parquet")
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise InputError(f"input {url}: cannot tell its format from its name; name it *.csv or "
                     "*.parquet, or set input_format (csv or parquet)")


def rows_per_batch(size: int | str, rows: int, nbytes: int) -> int:
    """Rows in a mini-batch: ``size`` itself, or for a size such as ``"10mb"`` as many rows
    as that many bytes of the file hold on average."""
    if isinstance(size, int):
        return size
    from ..jobs.spec import parse_size

    if rows == 0:
        return 1
    per_row = max(1.0, nbytes / rows)
    return max(1, int(parse_size(size) / per_row))


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
        return _plan_parquet(url, size, source)
    layout = scan_csv(url, encoding)
    step = rows_per_batch(size, layout.rows, layout.size)
    out: list[tuple[dict[str, Any], int]] = []
    for start in range(0, layout.rows, step):
        stop = min(layout.rows, start + step)
        item: dict[str, Any] = {"url": url, "format": "csv", "start": start, "stop": stop}
        if layout.starts is not None:
            item["offset"] = int(layout.starts[start])
            item["end"] = int(layout.starts[stop]) if stop < layout.rows else layout.size
            item["header_end"] = layout.header_end
        out.append((item, stop - start))
    return FilePlan(out, layout.columns, layout.rows)


# -- Parquet ---------------------------------------------------------------------------------

def _parquet_meta(url: str) -> tuple[pq.FileMetaData, int]:
    fs, path = url_to_fs(url)
    nbytes = int(fs.size(path) or 0)
    try:
        with fs.open(path, "rb") as fh:
            return pq.ParquetFile(fh).metadata, nbytes
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"input {url}: not a readable Parquet file: {exc}") from None


def _plan_parquet(url: str, size: int | str, source: str | None) -> FilePlan:
    meta, nbytes = _parquet_meta(url)
    step = rows_per_batch(size, meta.num_rows, nbytes)
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
    return FilePlan(out, list(meta.schema.to_arrow_schema().names), meta.num_rows)


_rg_cache = threading.local()  # the last row groups this thread decoded (for slices)


def _read_parquet(item: dict[str, Any], columns: list[str] | None) -> pd.DataFrame:
    url = item["url"]
    first, last = item["row_groups"]
    start, stop, rg_start = item["start"], item["stop"], item["rg_start"]
    key = (url, first, last, tuple(columns) if columns is not None else None)
    cached = getattr(_rg_cache, "entry", None)
    if cached is not None and cached[0] == key:
        table = cached[1]
    else:
        fs, path = url_to_fs(url)
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
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


# -- CSV -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CsvLayout:
    """Where a CSV file's records are: ``starts[i]`` is the byte offset of data row ``i``
    (None when the file needs the slow path), ``header_end`` where the first data row may
    begin."""

    size: int
    rows: int
    columns: list[str]
    header_end: int
    starts: np.ndarray | None


_NL, _CR, _QUOTE, _COMMA = 10, 13, 34, 44
_EDGE = np.array([_COMMA, _NL, _CR, _QUOTE], dtype=np.uint8)
_BLANK_START = np.array([32, 9, _CR, _NL], dtype=np.uint8)


def _ascii_compatible(encoding: str) -> bool:
    name = codecs.lookup(encoding).name
    if name == "utf-8-sig":
        return True
    try:
        return all(ch.encode(encoding) == ch.encode("ascii") for ch in '\n\r",\t ')
    except UnicodeError:
        return False


class _Fallback(Exception):
    """The fast scan cannot vouch for this file's record boundaries."""


class _CsvScan:
    """One pass over a CSV file's bytes: record starts, header, field counts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.starts: list[np.ndarray] = []
        self.rows = 0
        self.header: tuple[int, int, int] | None = None  # (start, end, fields)
        self.saw_nl = False
        self.saw_cr = False

    def block(self, data: bytes, base: int, final: bool) -> int:
        """Process the whole records at the start of ``data`` (all of it when ``final``);
        return how many bytes were consumed (0: a record is longer than the block)."""
        arr = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(arr == _NL)
        quotes = np.flatnonzero(arr == _QUOTE) if b'"' in data else None
        if quotes is not None:
            self._check_quotes(arr, quotes)
            if final and len(quotes) % 2:
                raise InputError(f"input {self.url}: not a readable CSV file: a quoted field "
                                 "is never closed")
            nl = nl[np.searchsorted(quotes, nl) % 2 == 0]  # newlines outside quotes
        if final:
            cut = len(arr)
        elif len(nl):
            cut = int(nl[-1]) + 1
        else:
            return 0
        if cut == 0:
            return 0
        arr = arr[:cut]
        nl = nl[nl < cut]
        self.saw_nl = self.saw_nl or bool(len(nl))
        self.saw_cr = self.saw_cr or b"\r" in data[:cut]
        if quotes is not None:
            quotes = quotes[quotes < cut]
        starts = np.concatenate(([0], nl + 1))
        starts = starts[starts < cut]
        ends = np.append(starts[1:], cut)
        blank = np.zeros(len(starts), dtype=bool)
        maybe = np.flatnonzero(np.isin(arr[starts], _BLANK_START))
        for j in maybe:
            blank[j] = not data[starts[j]:ends[j]].strip(b" \t\r\n")
        commas = np.flatnonzero(arr == _COMMA)
        if quotes is not None and len(commas):
            commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
        fields = np.bincount(np.searchsorted(starts, commas, side="right") - 1,
                             minlength=len(starts)) + 1
        keep = ~blank
        if self.header is None:
            first = np.flatnonzero(keep)
            if len(first) == 0:
                return cut
            h = int(first[0])
            self.header = (base + int(starts[h]), base + int(ends[h]), int(fields[h]))
            keep[: h + 1] = False
        wide = np.flatnonzero(keep & (fields > self.header[2]))
        if len(wide):
            row = self.rows + int(np.count_nonzero(keep[: wide[0]]))
            raise InputError(
                f"input {self.url}: not a readable CSV file: data row {row} has "
                f"{int(fields[wide[0]])} fields, the header has {self.header[2]}")
        kept = starts[keep].astype(np.int64) + base
        self.starts.append(kept)
        self.rows += len(kept)
        return cut

    @staticmethod
    def _check_quotes(arr: np.ndarray, quotes: np.ndarray) -> None:
        """Each quote must open a field (after a comma or line start, or be the second of a
        doubled quote) or close one (before a comma, line end, or a doubled quote); a
        quote anywhere else means the parity of quotes says nothing about records."""
        if not len(quotes):
            return
        opening = np.arange(len(quotes)) % 2 == 0
        prev = arr[np.maximum(quotes - 1, 0)]
        ok_prev = np.isin(prev, _EDGE) | (quotes == 0)
        nxt = arr[np.minimum(quotes + 1, len(arr) - 1)]
        ok_next = np.isin(nxt, _EDGE) | (quotes == len(arr) - 1)
        if np.any(opening & ~ok_prev) or np.any(~opening & ~ok_next):
            raise _Fallback


def scan_csv(url: str, encoding: str = "utf-8") -> CsvLayout:
    """Find the records of the CSV file at ``url`` (see the module's docstring)."""
    fs, path = url_to_fs(url)
    try:
        size = int(fs.size(path) or 0)
    except OSError as exc:
        raise InputError(f"input {url}: cannot be read: {exc}") from None
    if size == 0:
        return CsvLayout(0, 0, [], 0, np.zeros(0, dtype=np.int64))
    if _ascii_compatible(encoding):
        try:
            return _scan_fast(fs, path, url, size, encoding)
        except _Fallback:
            pass
    return _scan_slow(fs, path, url, size, encoding)


def _scan_fast(fs: Any, path: str, url: str, size: int, encoding: str) -> CsvLayout:
    scan = _CsvScan(url)
    decoder = codecs.getincrementaldecoder(encoding)()
    consumed = 0  # bytes given to the decoder so far
    pending = b""
    base = 0
    with fs.open(path, "rb") as fh:
        while True:
            chunk = fh.read(_BLOCK)
            final = not chunk
            data = pending + chunk
            # the structure first: a file that needs the slow path gets pandas' own message
            used = scan.block(data, base, final) if data else 0
            base += used
            pending = data[used:]
            if len(pending) > _MAX_RECORD:  # an unclosed quote, most likely: let pandas say
                raise _Fallback
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"input {url}: not valid {encoding} text at byte "
                    f"{consumed - held + exc.start} (set input_encoding if the file uses "
                    "another encoding)") from None
            consumed += len(chunk)
            if final:
                break
    if not scan.saw_nl and scan.saw_cr:
        raise _Fallback  # classic Mac line ends: pandas splits at \r, this scan does not
    if scan.header is None:
        return CsvLayout(size, 0, [], size, np.zeros(0, dtype=np.int64))
    columns = _header_columns(fs, path, url, scan.header[0], scan.header[1], encoding)
    starts = np.concatenate(scan.starts) if scan.starts else np.zeros(0, dtype=np.int64)
    return CsvLayout(size, scan.rows, columns, scan.header[1], starts)


def _header_columns(fs: Any, path: str, url: str, start: int, end: int,
                    encoding: str) -> list[str]:
    head = fs.cat_file(path, start=0, end=end)
    try:
        frame = pd.read_csv(io.BytesIO(head), nrows=0, encoding=encoding)
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"input {url}: not a readable CSV file: {exc}") from None
    return [str(c) for c in frame.columns]


def _scan_slow(fs: Any, path: str, url: str, size: int, encoding: str) -> CsvLayout:
    rows = 0
    columns: list[str] = []
    try:
        with fs.open(path, "rb") as fh:
            for chunk in pd.read_csv(fh, chunksize=65536, encoding=encoding):
                columns = columns or [str(c) for c in chunk.columns]
                rows += len(chunk)
    except UnicodeDecodeError:
        at = _first_bad_byte(fs, path, encoding)
        where = f" at byte {at}" if at is not None else ""
        raise InputError(
            f"input {url}: not valid {encoding} text{where} "
            f"(set input_encoding if the file uses another encoding)") from None
    except pd.errors.EmptyDataError:
        return CsvLayout(size, 0, [], size, None)
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"input {url}: not a readable CSV file: {exc}") from None
    return CsvLayout(size, rows, columns, 0, None)


def _first_bad_byte(fs: Any, path: str, encoding: str) -> int | None:
    """The offset in the file of the first byte that is not valid ``encoding``."""
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


def _read_csv(item: dict[str, Any], encoding: str, columns: list[str] | None) -> pd.DataFrame:
    url = item["url"]
    start, stop = item["start"], item["stop"]
    fs, path = url_to_fs(url)
    wanted = set(columns or ())
    usecols = wanted.__contains__ if columns is not None else None
    if "offset" in item:
        head = fs.cat_file(path, start=0, end=item["header_end"])
        body = fs.cat_file(path, start=item["offset"], end=item["end"])
        frame = pd.read_csv(io.BytesIO(head + body), encoding=encoding, usecols=usecols)
        if len(frame) != stop - start:
            raise InputError(
                f"input {url}: bytes {item['offset']}-{item['end']} hold {len(frame)} rows, "
                f"{stop - start} were planned; the file changed after the job was planned")
    else:  # the slow path: files the byte scan cannot split
        with fs.open(path, "rb") as fh:
            frame = pd.read_csv(fh, encoding=encoding, skiprows=range(1, start + 1),
                                nrows=stop - start, usecols=usecols)
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


# -- reading items ---------------------------------------------------------------------------

def read_item(item: dict[str, Any], encoding: str = "utf-8",
              columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of one planned item as a DataFrame indexed by their row numbers in the input;
    ``columns`` (when given) limits what is read to those of them the input has."""
    if item.get("format") == "parquet" and "row_groups" in item:
        return _read_parquet(item, columns)
    if item.get("format") == "csv":
        return _read_csv(item, encoding, columns)
    fmt = item.get("format") or file_format(item["url"])
    return read_rows(item["url"], fmt, encoding, item.get("start"), item.get("stop"))


def read_rows(url: str, fmt: str, encoding: str = "utf-8", start: int | None = None,
              stop: int | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of one input file (all of it without them), read directly: only
    the row groups (Parquet) it needs, or rows from the start (CSV)."""
    fs, path = url_to_fs(url)
    if fmt == "parquet":
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
    with fs.open(path, "rb") as fh:
        if start is None:
            return pd.read_csv(fh, encoding=encoding)
        frame = pd.read_csv(fh, encoding=encoding, skiprows=range(1, start + 1),
                            nrows=(stop - start) if stop is not None else None)
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


# -- SQL -------------------------------------------------------------------------------------

_DIALECTS = {"sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle"}


def is_database_url(url: str) -> bool:
    """True for a SQLAlchemy database URL (``sqlite:///...``, ``postgresql://...``)."""
    if "://" not in url:
        return False
    scheme = url.split("://", 1)[0].lower()
    return scheme.split("+", 1)[0] in _DIALECTS


def engine_url(url: str) -> str:
    """The URL SQLAlchemy is given: plain ``postgresql://`` (or ``postgres://``) uses the
    installed psycopg 3 driver."""
    scheme, rest = url.split("://", 1)
    if scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def create_db_engine(url: str, what: str = "database") -> Any:
    """A SQLAlchemy engine for ``url``; on SQLite every transaction really begins with
    ``BEGIN`` (Python's sqlite3 would leave ``CREATE TABLE`` outside it)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        engine = create_engine(engine_url(url), pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise InputError(f"{what} {safe_url(url)}: not a usable database URL: "
                         f"{_db_message(exc)}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")
    return engine


def _limit(conn: Any, limits: dict[str, Any]) -> threading.Timer | None:
    """Begin ``conn``'s transaction under a connection's limits: read-only, and a statement
    timeout (PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``statement_timeout``; SQLite:
    ``PRAGMA query_only`` and a progress handler that interrupts the query at the deadline).

    On PostgreSQL the timeout is also kept from this side: a timer cancels the query once the
    whole of it (every fetch) has run that long, since a query could change
    ``statement_timeout`` for the fetches after its first (``set_config``). Returns that timer,
    started (the caller cancels it)."""
    import time

    timeout = float(limits.get("statement_timeout") or 0)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        raw = conn.connection.driver_connection
        if limits.get("read_only", True):
            raw.execute("PRAGMA query_only = ON")
        if timeout > 0:
            deadline = time.monotonic() + timeout
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        conn.begin()
        return None
    if dialect != "postgresql":
        raise InputError(f"a connection's limits cannot be enforced on {dialect} databases")
    conn.begin()
    if limits.get("read_only", True):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    if timeout <= 0:
        return None
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
    timer = threading.Timer(timeout, conn.connection.driver_connection.cancel)
    timer.daemon = True
    timer.start()
    return timer


def snapshot_query(db_url: str, query: str, system: Store, rows_per_group: int,
                   limits: dict[str, Any] | None = None) -> tuple[str, int]:
    """Run ``query`` once and keep its result as Parquet in the system store; returns the
    snapshot's URL and its row count. The same result gives the same snapshot.

    ``limits`` (a registered connection's: ``read_only``, ``statement_timeout`` seconds,
    ``max_rows``) makes the query run in a read-only transaction with that timeout, and fail
    once it returns more than ``max_rows`` rows."""
    from sqlalchemy.exc import SQLAlchemyError

    where = safe_url(db_url)
    if limits and limits.get("connection"):
        where = f"connection {limits['connection']!r}"
    max_rows = int(limits.get("max_rows") or 0) if limits else 0
    engine = create_db_engine(db_url, "SQL input")
    scratch = Path(tempfile.mkdtemp(prefix="batchscore-sql-"))
    try:
        pieces: list[Path] = []
        schemas: list[pa.Schema] = []
        count = 0
        timer = None
        try:
            with engine.connect() as conn:
                if limits:
                    timer = _limit(conn, limits)
                result = conn.execution_options(stream_results=True).exec_driver_sql(query)
                if not result.returns_rows:
                    raise InputError(f"SQL query on {where} returns no rows to score (it is "
                                     f"not a SELECT): {query!r}")
                names = result.keys()
                columns = [str(c) for c in names]
                while True:
                    want = rows_per_group if not max_rows else \
                        max(1, min(rows_per_group, max_rows + 1 - count))
                    rows = result.fetchmany(want)
                    count += len(rows)
                    if max_rows and count > max_rows:
                        raise InputError(
                            f"SQL query on {where} returns more than {max_rows} rows, the "
                            "connection's row cap (max_rows); narrow the query")
                    if not rows and pieces:
                        break
                    chunk = pd.DataFrame.from_records(rows, columns=columns,
                                                      coerce_float=True)
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    piece = scratch / f"piece-{len(pieces):06d}.parquet"
                    pq.write_table(table, piece)
                    pieces.append(piece)
                    schemas.append(table.schema)
                    if not rows:
                        break
        except SQLAlchemyError as exc:
            if timer is not None and timer.finished.is_set():
                raise InputError(f"SQL query on {where} ran past the connection's statement "
                                 f"timeout ({limits['statement_timeout']:g}s)") from None
            raise InputError(f"SQL query on {where} failed: {_db_message(exc)}") from None
        finally:
            if timer is not None:
                timer.cancel()
            engine.dispose()
        schema = unify_schemas(schemas)
        final = scratch / "result.parquet"
        total = 0
        with pq.ParquetWriter(final, schema) as writer:
            for piece in pieces:
                table = conform(pq.read_table(piece), schema)
                total += table.num_rows
                writer.write_table(table, row_group_size=rows_per_group)
        digest = hashlib.sha256()
        with open(final, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        rel = sql_snapshot(digest.hexdigest())
        if not system.exists(rel):
            system.put_file(final, rel)
        return system.url_of(rel), total
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


def check_query(query: Any) -> str:
    """``options.query`` as a non-empty string."""
    if not isinstance(query, str) or not query.strip():
        raise SpecError("a SQL input needs options.query (the SELECT to run), "
                        f"got {query!r}")
    return query
