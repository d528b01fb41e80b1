"""CSV files, read by byte ranges.

The file is read once with NumPy to find where each record starts (quotes are tracked, so a
quoted field holding a newline stays one record; blank lines are left out as pandas leaves them
out), so a mini-batch is a byte range parsed with the header in front. The same pass checks the
text encoding and that no row has more fields than the header. Files this scan cannot vouch
for (a quote inside an unquoted field, ``\\r``-only line ends, an encoding such as UTF-16 that
is not ASCII-compatible) fall back to counting rows with pandas and reading row ranges with
``skiprows``: correct, but slower.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fsspec.core import url_to_fs

from ..errors import InputError

__all__ = ["CsvLayout", "plan_ranges", "read_item", "read_rows", "scan_csv"]

SUFFIXES = (".csv",)
_BLOCK = 8 << 20  # bytes a CSV scan reads at a time
_MAX_RECORD = 64 << 20  # a longer record sends the file to the slow path


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


def read_item(item: dict[str, Any], encoding: str = "utf-8", columns: list[str] | None = None
              ) -> pd.DataFrame:
    """The rows of one planned item (:func:`plan_ranges`), indexed by their row numbers."""
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


def plan_ranges(url: str, layout: CsvLayout, step: int) -> list[tuple[dict[str, Any], int]]:
    """The file's row ranges of ``step`` rows ``(item, rows)``, in order, each with its byte
    range when the scan found the records' starts."""
    out: list[tuple[dict[str, Any], int]] = []
    for start in range(0, layout.rows, step):
        stop = min(layout.rows, start + step)
        item: dict[str, Any] = {"url": url, "format": "csv", "start": start, "stop": stop}
        if layout.starts is not None:
            item["offset"] = int(layout.starts[start])
            item["end"] = int(layout.starts[stop]) if stop < layout.rows else layout.size
            item["header_end"] = layout.header_end
        out.append((item, stop - start))
    return out


def read_rows(url: str, encoding: str = "utf-8", start: int | None = None,
              stop: int | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of the file (all of it without them), read from its start."""
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as fh:
        if start is None:
            return pd.read_csv(fh, encoding=encoding)
        frame = pd.read_csv(fh, encoding=encoding, skiprows=range(1, start + 1),
                            nrows=(stop - start) if stop is not None else None)
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame
