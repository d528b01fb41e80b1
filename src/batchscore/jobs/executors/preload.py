"""What the local executor's fork server imports once, when it starts: the workers it forks
find these modules loaded, instead of importing them for each job.

Importing this module imports them: the workers' own module, the built-in kinds' modules
(pandas, pyarrow and NumPy come with them), the scikit-learn modules that pickled models
most often need, the command line's module (a worker re-runs the program's main module: the
service's is the ``batchscore`` script, which imports it: 55 ms per worker here), and what the
first table through pyarrow and scikit-learn imports on first use (:func:`warm_tables`: 10 ms
per worker). One that fails to import is skipped here, so that the server still starts; a
worker that needs it imports it itself, and its job reports the error.
"""

from __future__ import annotations

import contextlib
import importlib

__all__ = ["MODULES", "import_modules", "warm_tables"]

MODULES = (
    "batchscore.jobs.worker", "batchscore.jobs.script", "batchscore.tabular.job",
    "batchscore.video.job", "pyarrow.parquet", "joblib", "sklearn.pipeline",
    "sklearn.compose", "sklearn.preprocessing", "sklearn.linear_model", "sklearn.ensemble",
    "batchscore.cli",
)


def import_modules(names: tuple[str, ...] | list[str]) -> list[str]:
    """Import each of ``names``, skipping any that fails (whatever it raises); the names
    imported."""
    imported = []
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
            imported.append(name)
    return imported


def warm_tables() -> None:
    """Import what the first table through pyarrow and scikit-learn imports on first use:
    pyarrow's pandas conversion, and narwhals' pandas backend, which scikit-learn (1.7 and
    later) loads for the first DataFrame it is given. One row, no thread pool started (the
    server forks; a pool's threads would not follow). Whatever fails is left to the workers."""
    with contextlib.suppress(Exception):
        import pyarrow as pa

        frame = pa.table({"x": [1.0]}).to_pandas(use_threads=False)
        import narwhals.stable.v2 as nw

        nw.from_native(frame)


import_modules(MODULES)
warm_tables()
