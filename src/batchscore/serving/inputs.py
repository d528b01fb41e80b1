"""Request bodies of both protocols turned into rows, checked against the model signature.

Every refusal is an :class:`InputProblem` whose message names the rule and the value."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MLFLOW_KEYS", "InputProblem", "Signature", "parse_csv", "parse_mlflow",
           "parse_v2"]

Signature = list[tuple[str, str]]  # (column, MLflow type name: double, long, string, ...)
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NUMERIC = {"double", "float", "long", "integer"}
_INT_RANGE = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_FLOAT_MAX = {"double": float(np.finfo(np.float64).max), "float": float(np.finfo(np.float32).max)}


class InputProblem(ValueError):
    """A request the model cannot score; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _names(sig: Signature) -> str:
    return ", ".join(name for name, _ in sig)


def _by_name(record: Any, sig: Signature, where: str) -> list[Any]:
    if not isinstance(record, dict):
        raise InputProblem(f"{where} must be an object of column: value, got "
                           f"{type(record).__name__}")
    expected = [name for name, _ in sig]
    missing = [n for n in expected if n not in record]
    if missing:  # columns the model does not use are dropped, as MLflow drops them
        raise InputProblem(f"{where}: missing columns: {', '.join(missing)} (the model "
                           f"expects {_names(sig)})")
    return [record[n] for n in expected]


def _positional(rows: Any, sig: Signature, what: str) -> list[list[Any]]:
    if not isinstance(rows, list):
        raise InputProblem(f"{what} must be a list of rows, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            out.append(_by_name(row, sig, f"{what} row {i}"))
            continue
        if not isinstance(row, list):
            row = [row]
        if len(row) != len(sig):
            raise InputProblem(f"{what} row {i} has {len(row)} values; the model expects "
                               f"{len(sig)} columns ({_names(sig)})")
        out.append(row)
    return out


def _columnar(columns: dict[str, Any], sig: Signature, what: str) -> list[list[Any]]:
    values = _by_name(columns, sig, what)
    if not all(isinstance(v, list) for v in values):
        raise InputProblem(f"{what} as an object must map each column to a list of values")
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        raise InputProblem(f"{what}: columns have different lengths {sorted(lengths)}")
    return [list(r) for r in zip(*values, strict=True)]


_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")


def _from_text(value: str, kind: str) -> Any:
    """A number sent as text ("63"), converted as MLflow converts it; else as it was."""
    if kind in ("long", "integer") and _INTEGER.match(value):
        return int(value)
    if kind in ("double", "float"):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def _check_value(value: Any, kind: str, column: str, row: int) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if kind == "string" and value is None:  # MLflow passes a null string on as None
            return None
        raise InputProblem(f"column {column!r} has a missing value (NaN/null) in row {row}")
    if kind in _NUMERIC and isinstance(value, str):
        value = _from_text(value, kind)
    if kind in _NUMERIC:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if kind in ("long", "integer") and isinstance(value, float):
            ok = value.is_integer()
        if not ok:
            raise InputProblem(f"column {column!r} must be {kind}, got {value!r} "
                               f"({type(value).__name__}) in row {row}")
        if isinstance(value, float) and math.isinf(value):
            raise InputProblem(f"column {column!r} has an infinite value in row {row}")
        low, high = _INT_RANGE.get(kind, (-_FLOAT_MAX.get(kind, 0.0), _FLOAT_MAX.get(kind, 0.0)))
        if not low <= value <= high:  # ints compare exactly, however large
            raise InputProblem(f"column {column!r} holds {_short(value)}, out of the range of "
                               f"{kind} in row {row}")
    elif kind == "boolean" and not isinstance(value, bool):
        raise InputProblem(f"column {column!r} must be boolean, got {value!r} in row {row}")
    elif kind == "string" and not isinstance(value, str):
        raise InputProblem(f"column {column!r} must be string, got {value!r} in row {row}")
    return value


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else \
        f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 80 else text[:77] + "..."


def to_frame(rows: list[list[Any]], sig: Signature) -> pd.DataFrame:
    """Rows checked value by value against the signature, as a typed DataFrame."""
    if not rows:
        raise InputProblem("the request holds no rows to score")
    # column by column, each built in its type at once: building the frame row by row and
    # converting every column afterwards cost about a millisecond of a one-row request
    columns: dict[str, Any] = {}
    for j, (name, kind) in enumerate(sig):
        column = _plain_column([row[j] for row in rows], kind)
        if column is None:  # a value that needs a look (or a refusal): the checked path
            return _checked_frame(rows, sig)
        columns[name] = column
    return pd.DataFrame(columns)


def _checked_frame(rows: list[list[Any]], sig: Signature) -> pd.DataFrame:
    """The frame with every value checked one by one (texts converted, refusals named in
    row order): what :func:`to_frame` does when a column is not plain."""
    rows = [[_check_value(value, kind, column, i)
             for value, (column, kind) in zip(row, sig, strict=True)]
            for i, row in enumerate(rows)]
    columns: dict[str, Any] = {}
    for j, (name, kind) in enumerate(sig):
        values = [row[j] for row in rows]
        columns[name] = np.array(values, dtype=_DTYPES[kind]) if kind in _DTYPES else values
    return pd.DataFrame(columns)


def _plain_column(values: list[Any], kind: str) -> Any:
    """``values`` as the column of ``kind`` when every one of them is a plain, valid value of
    it (finite numbers in range, no text, no null), checked column-wise; else None, and the
    caller checks value by value (which converts texts and names the first refusal)."""
    try:
        if kind in ("double", "float"):
            if not all(type(v) is float or type(v) is int for v in values):
                return None
            array = np.array(values, dtype="float64")  # OverflowError: an int out of range
            if not np.isfinite(array).all() or np.abs(array).max() > _FLOAT_MAX[kind]:
                return None
            return array if kind == "double" else array.astype("float32")
        if kind in ("long", "integer"):
            if not all(type(v) is int for v in values):
                return None
            array = np.array(values, dtype="int64")  # OverflowError past 64 bits
            low, high = _INT_RANGE[kind]
            if array.min() < low or array.max() > high:
                return None
            return array if kind == "long" else array.astype("int32")
    except OverflowError:
        return None
    if kind == "boolean":
        return np.array(values, dtype="bool") if all(type(v) is bool for v in values) else None
    if kind == "string":
        return values if all(type(v) is str for v in values) else None
    return None


_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32",
           "boolean": "bool"}


def parse_mlflow(body: Any, sig: Signature) -> pd.DataFrame:
    """A body of the MLflow scoring protocol (one of :data:`MLFLOW_KEYS`)."""
    if not isinstance(body, dict):
        raise InputProblem(f"the body must be a JSON object with one of {', '.join(MLFLOW_KEYS)}")
    keys = [k for k in MLFLOW_KEYS if k in body]
    if len(keys) != 1:
        raise InputProblem(f"the body must hold exactly one of {', '.join(MLFLOW_KEYS)}; "
                           f"got {', '.join(map(str, body)) or 'none'}")
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InputProblem("dataframe_split must be an object with 'data' (and 'columns')")
        columns = value.get("columns")
        if columns is None:
            return to_frame(_positional(value["data"], sig, "dataframe_split.data"), sig)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InputProblem("dataframe_split.columns must be a list of column names "
                               "(strings)")
        missing = [n for n, _ in sig if n not in columns]
        if missing:
            raise InputProblem(f"dataframe_split: missing columns: {', '.join(missing)} "
                               f"(the model expects {_names(sig)})")
        named = [(c, "any") for c in columns]  # every column the body names, by place
        rows = _positional(value["data"], named, "dataframe_split.data")
        # each signature column's place in the body: its last, as a dict of the row takes it
        place = {c: i for i, c in enumerate(columns)}
        at = [place[n] for n, _ in sig]
        if at == list(range(len(columns))):  # the signature's columns, in its order
            return to_frame(rows, sig)
        return to_frame([[r[i] for i in at] for r in rows], sig)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise InputProblem("dataframe_records must be a list of objects")
        return to_frame([_by_name(r, sig, f"dataframe_records row {i}")
                         for i, r in enumerate(value)], sig)
    if isinstance(value, dict):
        return to_frame(_columnar(value, sig, key), sig)
    return to_frame(_positional(value, sig, key), sig)


def _flatten(data: Any, depth: int = 0) -> list[Any]:
    if isinstance(data, list):
        if depth > 8:
            raise InputProblem("tensor data nests deeper than 8 levels")
        return [x for item in data for x in _flatten(item, depth + 1)]
    return [data]


def parse_v2(body: Any, sig: Signature) -> pd.DataFrame:
    """An Open Inference Protocol v2 request: one [rows, columns] tensor, or one [rows]
    tensor per column named after it."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InputProblem("the body must be an object with a non-empty 'inputs' list of tensors")
    tensors = body["inputs"]
    for t in tensors:
        if not isinstance(t, dict) or not {"name", "shape", "datatype", "data"} <= set(t):
            raise InputProblem("every input tensor needs name, shape, datatype and data")
        if not isinstance(t["name"], str):
            raise InputProblem(f"an input tensor's name must be a string, got "
                               f"{type(t['name']).__name__}")
        if not isinstance(t["shape"], list) or not t["shape"] or not all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31
                for n in t["shape"]):
            raise InputProblem(f"input {t['name']!r}: shape must be a list of integers "
                               "from 0 to 2**31-1")
    if len(tensors) == 1 and len(tensors[0]["shape"]) == 2:
        t = tensors[0]
        n, width = t["shape"]
        flat = _flatten(t["data"])
        if width != len(sig):
            raise InputProblem(f"input {t['name']!r} has {width} columns; the model expects "
                               f"{len(sig)} ({_names(sig)})")
        if len(flat) != n * width:
            raise InputProblem(f"input {t['name']!r}: shape {t['shape']} needs {n * width} "
                               f"values, got {len(flat)}")
        return to_frame([flat[i * width:(i + 1) * width] for i in range(n)], sig)
    columns = {}
    for t in tensors:
        flat = _flatten(t["data"])
        if math.prod(t["shape"]) != len(flat):
            raise InputProblem(f"input {t['name']!r}: shape {t['shape']} needs "
                               f"{math.prod(t['shape'])} values, got {len(flat)}")
        columns[t["name"]] = flat
    return to_frame(_columnar(columns, sig, "inputs"), sig)


def parse_csv(raw: bytes, sig: Signature) -> pd.DataFrame:
    """A ``text/csv`` body (a header row, then rows), as MLflow's server reads it."""
    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise InputProblem(f"the text/csv body cannot be read: {exc}") from None
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return to_frame([_by_name(r, sig, f"csv row {i}") for i, r in enumerate(records)], sig)
