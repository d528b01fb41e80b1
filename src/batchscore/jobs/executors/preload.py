"""What the local executor's fork server imports once, when it starts: the workers it forks
find these modules loaded, instead of importing them for each job.

Importing this module imports them: the workers' own module, the built-in kinds' modules
(pandas, pyarrow and NumPy come with them) and the scikit-learn modules that pickled models
most often need. One that fails to import is skipped here, so that the server still starts;
a worker that needs it imports it itself, and its job reports the error.
"""

from __future__ import annotations

import contextlib
import importlib

__all__ = ["MODULES", "import_modules"]

MODULES = (
    "batchscore.jobs.worker", "batchscore.jobs.script", "batchscore.tabular.job",
    "batchscore.video.job", "pyarrow.parquet", "joblib", "sklearn.pipeline",
    "sklearn.compose", "sklearn.preprocessing", "sklearn.linear_model", "sklearn.ensemble",
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


import_modules(MODULES)
