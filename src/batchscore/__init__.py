"""batchscore: self-hosted batch scoring. The public API; everything else is internal."""

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
