"""Tabular batch scoring: Python models (MLflow pyfunc, scikit-learn) over CSV, Parquet and SQL.

The ``tabular`` job kind reads its inputs in mini-batches of rows (:mod:`.readers`), scores
each with one model or, with ``group_by``, each group of rows with its own model
(:mod:`.models`), rejects the rows a model cannot take (reported per row, counted against
``error_threshold``), and writes the predictions beside the input's key columns to Parquet,
CSV or a SQL table (:mod:`.writers`). :func:`tabular_spec` builds the job spec.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TabularKind", "TabularOptions", "tabular_spec"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the job engine imports .readers, and .job imports the engine.
    if name in __all__:
        from . import job

        return getattr(job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
