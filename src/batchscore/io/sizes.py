"""Mini-batch sizes: a number of rows, or about a number of bytes (``"10kb"``)."""

from __future__ import annotations

import re

__all__ = ["parse_size", "rows_per_batch"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_size(value: str) -> int:
    """``"10kb"`` -> 10240 bytes; a bare number is bytes."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is neither a count nor a size such as '10kb' or '1mb'")
    number, unit = match.groups()
    if float(number) == 0:
        raise ValueError(f"{value!r}: a size must be more than 0")
    return max(1, int(float(number) * _UNITS[(unit or "b").lower()]))


def rows_per_batch(size: int | str, rows: int, nbytes: int) -> int:
    """Rows in a mini-batch: ``size`` itself, or for a size such as ``"10mb"`` as many rows
    as that many bytes of the file hold on average."""
    if isinstance(size, int):
        return size
    if rows == 0:
        return 1
    # in integers: size / (nbytes / rows) in floats is 24.999... for a whole 25-row file
    # of some sizes (a Parquet file as pyarrow 19 writes it), one row short of the file
    if nbytes <= rows:  # at least a byte a row
        return max(1, parse_size(size))
    return max(1, parse_size(size) * rows // nbytes)
