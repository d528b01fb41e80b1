"""Data tests for projects: pandera schema failures and distribution shift, reported by column.

A project's ``data_tests.py`` defines its schema and calls :func:`run_checks`; the result is a
list of problems, one line each, every line naming its column (empty: the data passed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = ["drift_problems", "run_checks", "schema_problems"]


def schema_problems(schema: Any, data: pd.DataFrame) -> list[str]:
    """Every failure of the pandera ``schema`` on ``data``, grouped by column."""
    from pandera.errors import SchemaErrors

    try:
        schema.validate(data, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    problems = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        values = [v for v in group["failure_case"].tolist()]
        if check == "column_in_dataframe":
            problems.extend(f"column {v!r}: missing from the data" for v in values)
            continue
        if check == "column_in_schema":
            problems.extend(f"column {v!r}: not in the schema" for v in values)
            continue
        if check == "not_nullable":
            problems.append(f"column {column!r}: {len(values)} missing values (NaN/null)")
            continue
        shown = ", ".join(repr(v) for v in values[:3])
        problems.append(f"column {column!r}: fails {check} in {len(values)} rows "
                        f"(for example {shown})")
    return problems


def drift_problems(data: pd.DataFrame, reference: pd.DataFrame, columns: Iterable[str],
                   p_value: float = 0.001) -> list[str]:
    """Columns whose distribution differs from the reference's (two-sample KS test)."""
    from scipy.stats import ks_2samp

    problems = []
    for column in columns:
        if column not in data or column not in reference:
            continue
        now, ref = data[column].dropna(), reference[column].dropna()
        if len(now) < 2 or len(ref) < 2:
            continue
        result = ks_2samp(now, ref)
        if result.pvalue < p_value:
            problems.append(
                f"column {column!r}: distribution shift against the reference data (mean "
                f"{now.mean():.4g} vs {ref.mean():.4g}, KS statistic {result.statistic:.2f}, "
                f"p={result.pvalue:.2g} < {p_value})")
    return problems


def run_checks(schema: Any, data: pd.DataFrame, reference: pd.DataFrame,
               drift_columns: Iterable[str], p_value: float = 0.001) -> list[str]:
    """Schema problems first; the shift test runs only on data that fits the schema."""
    problems = schema_problems(schema, data)
    if problems:
        return problems
    return drift_problems(data, reference, drift_columns, p_value)
