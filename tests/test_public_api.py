"""The public API is deliberate: this list changes only on purpose."""

from __future__ import annotations

import importlib

import batchscore

PUBLIC = [
    "BatchscoreError",
    "InputError",
    "JobFailedError",
    "JobNotFoundError",
    "JobSpec",
    "JobStateError",
    "MediaError",
    "OutputExistsError",
    "ScriptError",
    "SpecError",
    "UsageError",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "cancel_job",
    "get_job",
    "init_workspace",
    "job_logs",
    "list_jobs",
    "load_spec",
    "open_workspace",
    "resume_job",
    "run_job",
    "spec_from_mapping",
    "submit_job",
]


def test_all_is_pinned():
    assert batchscore.__all__ == PUBLIC


def test_every_public_name_imports():
    module = importlib.import_module("batchscore")
    for name in PUBLIC:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from batchscore import *", namespace)
    assert set(PUBLIC) - {"__version__"} <= set(namespace)


def test_errors_are_one_tree_with_exit_codes():
    usage = [batchscore.WorkspaceError, batchscore.SpecError, batchscore.InputError,
             batchscore.OutputExistsError, batchscore.ScriptError, batchscore.MediaError,
             batchscore.JobNotFoundError]
    assert all(issubclass(e, batchscore.UsageError) and e.exit_code == 2 for e in usage)
    assert batchscore.JobStateError.exit_code == 2
    assert batchscore.JobFailedError.exit_code == 1
    assert issubclass(batchscore.UsageError, batchscore.BatchscoreError)
    err = batchscore.JobFailedError("job-1", "why")
    assert (str(err), err.job_id, err.reason) == ("job job-1 failed: why", "job-1", "why")


def test_version_is_a_string():
    assert isinstance(batchscore.__version__, str) and batchscore.__version__.count(".") == 2
