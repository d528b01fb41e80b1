"""Scoring rows with one model: check and convert them, predict, and report the rejected ones.

A row is rejected, with the column and the problem, when:

- a column the model needs is missing (every row of the mini-batch);
- a value cannot be converted to the type the model declares (an MLflow signature's column
  type), or, for a model that declares no types, a text value in a column whose other values
  are numbers (``"abc"`` in a column of measurements read from a CSV file);
- a value is missing where the model needs one (a required column, and a model that does not
  take missing values: scikit-learn's ``allow_nan`` tag);
- the model itself raises on it: the batch is split in halves until the rows it fails on are
  found (at most :data:`BISECT_BUDGET` calls; a model that fails on more rows than that fails
  the mini-batch, which is then retried as a whole).

The rest of the rows are scored together, in one ``predict`` call when nothing is wrong.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .models import LoadedModel

__all__ = ["BISECT_BUDGET", "Reject", "ScoringError", "prediction_frame", "score_rows"]

BISECT_BUDGET = 256
_NUMPY = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class ScoringError(Exception):
    """The model fails on too many of the rows (or returns the wrong number of predictions):
    the mini-batch fails, and is retried."""


@dataclass(frozen=True)
class Reject:
    row: int  # the row's number in its input
    column: str
    problem: str


def score_rows(model: LoadedModel, frame: pd.DataFrame, features: list[str],
               prediction: str) -> tuple[pd.DataFrame, list[Reject]]:
    """Score ``frame``'s rows with ``model`` on ``features``: the predictions (indexed like
    the rows scored) and the rows rejected."""
    declared = {c.name: c for c in model.columns} if model.columns is not None else {}
    needed = [f for f in features if f not in declared or declared[f].required]
    absent = [f for f in needed if f not in frame.columns]
    if absent:
        names = ", ".join(absent)
        problem = f"missing column{'s' if len(absent) > 1 else ''} {names} (the model needs it)"
        return _empty(prediction), [Reject(int(r), names, problem) for r in frame.index]
    use = [f for f in features if f in frame.columns]
    # masks as numpy arrays, and a frame copied only where something changes: the checks
    # of a clean numeric mini-batch (the usual one) cost a pass over each column, not a
    # dozen pandas operations and a copy of every row
    bad = np.zeros(len(frame), dtype=bool)
    problems: dict[int, tuple[str, str]] = {}
    columns: dict[str, pd.Series] = {}
    converted_any = False
    for name in use:
        spec = declared.get(name)
        kind = spec.type if spec is not None else None
        needs_value = (spec is None or spec.required) and not model.allow_nan
        col = frame[name]
        converted, invalid = _convert(col, kind)
        failing = invalid
        if needs_value and (missing := _missing(col)) is not None:
            failing = missing if invalid is None else invalid | missing
        if failing is not None and failing.any():
            for pos in np.flatnonzero(failing & ~bad):
                row = frame.index[pos]
                problems[int(row)] = (name, _problem(col.iat[pos], kind)
                                      if invalid is not None and invalid[pos]
                                      else "missing value")
            bad |= failing
        columns[name] = converted
        converted_any = converted_any or converted is not col
    if not use:
        X = frame.iloc[:, :0]
    elif not converted_any and frame.columns.is_unique:
        X = frame[use]  # nothing converted: the input's own columns
    else:
        X = pd.DataFrame(columns, index=frame.index)[use]
    if bad.any():
        X = X[~bad]
    X = _cast(X, declared)
    rejects = [Reject(row, col, text) for row, (col, text) in problems.items()]
    if X.empty:
        return _empty(prediction), sorted(rejects, key=lambda r: r.row)
    scored, failed = _predict(model, X, prediction)
    rejects.extend(Reject(int(row), _guess_column(X.loc[row]), text) for row, text in failed)
    return scored, sorted(rejects, key=lambda r: r.row)


def _missing(col: pd.Series) -> np.ndarray | None:
    """The rows of ``col`` that hold no value (None: it cannot hold a missing value, as a
    NumPy column of integers or booleans). A NumPy float column is checked with NumPy
    (half the time of pandas' ``isna`` on a 131,072-row column here)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iub":
            return None
        if dtype.kind == "f":
            return np.isnan(col.to_numpy())
    return col.isna().to_numpy()


def _empty(prediction: str) -> pd.DataFrame:
    return pd.DataFrame({prediction: pd.Series([], dtype="float64")})


def _convert(col: pd.Series, kind: str | None) -> tuple[pd.Series, np.ndarray | None]:
    """``col`` converted for a model column of type ``kind`` (None: not declared), and the
    rows whose value cannot be (a boolean array; None: none of them)."""
    numeric_dtype = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if kind is None:
        if numeric_dtype or pd.api.types.is_bool_dtype(col) or \
                pd.api.types.is_datetime64_any_dtype(col):
            return col, None
        present = col.notna()
        numbers = pd.to_numeric(col, errors="coerce")
        parsed = numbers.notna() & present
        invalid = present & ~parsed
        # a column of numbers with a few typos: reject the typos, score the numbers
        if parsed.any() and invalid.any() and 2 * parsed.sum() >= present.sum():
            return numbers, invalid.to_numpy()
        return col, None
    if kind in _NUMPY:
        if numeric_dtype:
            numbers, invalid_numbers = col, None  # a number column: only fractions can fail
        else:
            numbers = pd.to_numeric(col, errors="coerce")
            invalid_numbers = (col.notna() & numbers.isna()).to_numpy()
        if kind in ("long", "integer") and not pd.api.types.is_integer_dtype(numbers):
            fractional = (numbers.notna() & (numbers % 1 != 0)).to_numpy()
            invalid_numbers = fractional if invalid_numbers is None \
                else invalid_numbers | fractional
        return numbers, invalid_numbers
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(col):
            return col, None
        mapped = col.map(_as_bool, na_action="ignore")
        return mapped, (col.notna() & mapped.isna()).to_numpy()
    if kind == "string":
        if pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col):
            return col, None
        return col.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore"), None
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col):
            return col, None
        stamps = pd.to_datetime(col, errors="coerce", format="ISO8601")
        return stamps, (col.notna() & stamps.isna()).to_numpy()
    return col, None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _problem(value: Any, kind: str | None) -> str:
    shown = repr(value.item() if hasattr(value, "item") else value)
    if kind in ("long", "integer"):
        try:
            float(value)
            return f"value {shown} is not an integer (the model takes {kind})"
        except (TypeError, ValueError):
            pass
    what = {"boolean": "true or false", "datetime": "a date/time"}.get(kind or "", "a number")
    suffix = f" (the model takes {kind})" if kind else ""
    return f"value {shown} is not {what}{suffix}"


def _cast(X: pd.DataFrame, declared: dict[str, Any]) -> pd.DataFrame:
    """Give declared numeric columns exactly their type (MLflow refuses an unsafe cast)."""
    changes = {}
    for name, spec in declared.items():
        if name in X.columns and spec.type in _NUMPY and str(X[name].dtype) != _NUMPY[spec.type]:
            # (missing values in an optional integer column stay floats)
            with contextlib.suppress(TypeError, ValueError):
                changes[name] = X[name].astype(_NUMPY[spec.type])
    for name, spec in declared.items():
        if name in X.columns and spec.type == "boolean" and X[name].dtype == object:
            changes[name] = X[name].astype(bool)
    return X.assign(**changes) if changes else X


def _predict(model: LoadedModel, X: pd.DataFrame, prediction: str
             ) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Predict ``X``; when the model raises, find the rows it fails on by halving."""
    pieces: list[pd.DataFrame] = []
    failed: list[tuple[int, str]] = []
    budget = [BISECT_BUDGET]
    first: list[BaseException] = []

    def attempt(part: pd.DataFrame) -> BaseException | None:
        budget[0] -= 1
        try:
            result = model.predict(part)
        except Exception as exc:  # the model may raise anything on bad rows
            return exc
        pieces.append(prediction_frame(result, part.index, prediction))
        return None

    def split(part: pd.DataFrame, exc: BaseException) -> None:
        if len(part) == 1:
            failed.append((int(part.index[0]), _message(exc)))
            return
        if budget[0] <= 0:
            raise ScoringError(f"the model fails on many of these rows: {_message(first[0])}")
        mid = len(part) // 2
        for half in (part.iloc[:mid], part.iloc[mid:]):
            error = attempt(half)
            if error is not None:
                split(half, error)

    error = attempt(X)
    if error is not None:
        first.append(error)
        split(X, error)
    if not pieces:
        return _empty(prediction), failed
    if len(pieces) == 1 and pieces[0].index.is_monotonic_increasing:
        return pieces[0], failed  # one predict call on rows in order: nothing to assemble
    return pd.concat(pieces).sort_index(), failed


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[-1] if text else ""
    message = f"the model failed: {type(exc).__name__}: {line}".rstrip(": ")
    return message if len(message) <= 300 else message[:297] + "..."


def _guess_column(row: pd.Series) -> str:
    """The first value of a row that is text where a number would do (a model's own error
    seldom names the column)."""
    for name, value in row.items():
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return str(name)
    return ""


def prediction_frame(result: Any, index: pd.Index, name: str) -> pd.DataFrame:
    """A model's output for the rows ``index`` as columns: a DataFrame keeps its columns; a
    vector is ``name``; a matrix is ``name_0``, ``name_1``, ..."""
    n = len(index)
    if isinstance(result, pd.DataFrame):
        frame = result.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
    elif isinstance(result, pd.Series):
        frame = pd.DataFrame({name: result.to_numpy()})
    else:
        arr = np.asarray(result)
        if arr.ndim == 0:
            raise ScoringError(f"the model returned a single value ({arr!r}) for {n} rows")
        if arr.ndim == 1:
            frame = pd.DataFrame({name: arr})
        elif arr.ndim == 2 and arr.shape[1] == 1:
            frame = pd.DataFrame({name: arr[:, 0]})
        elif arr.ndim == 2:
            frame = pd.DataFrame({f"{name}_{i}": arr[:, i] for i in range(arr.shape[1])})
        else:
            frame = pd.DataFrame({name: list(arr)})
    if len(frame) != n:
        raise ScoringError(f"the model returned {len(frame)} predictions for {n} rows")
    frame.index = index
    return frame
