"""batchscore: self-hosted batch scoring. The public API; everything else is internal."""

import os

# ONNX Runtime (from 1.29, on Linux and macOS too) and MLflow (3.x) send usage telemetry to
# their makers unless told not to, ONNX Runtime before it starts: a self-hosted platform's
# models, workers and servers send nothing anywhere by default (the children they start
# inherit it). Set either variable yourself to choose otherwise (docs/security.md).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from .errors import (
    BatchscoreError,
    InputError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    MediaError,
    OutputExistsError,
    ScriptError,
    SpecError,
    UsageError,
    WorkspaceError,
)
from .jobs import (
    JobSpec,
    cancel_job,
    get_job,
    job_logs,
    list_jobs,
    load_spec,
    resume_job,
    run_job,
    spec_from_mapping,
    submit_job,
)
from .workspace import Workspace, init_workspace, open_workspace

__version__ = "0.1.0"

__all__ = [
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
