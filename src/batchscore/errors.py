"""The exceptions batchscore raises on purpose.

Every message states the broken rule and the offending value, so that the CLI can print it
as it is and exit with code 2. The tree::

    BatchscoreError                 anything batchscore refuses or cannot do
    ├── UsageError                  bad input from the user (exit code 2)
    │   ├── WorkspaceError          workspace or state database missing, unreadable or too new
    │   ├── SpecError               a job spec / deployment YAML that is not valid
    │   ├── InputError              inputs that do not exist, match nothing, or cannot be read
    │   ├── OutputExistsError       the output location already holds a finished output
    │   ├── ScriptError             a scoring script that is missing, broken or breaks the contract
    │   ├── MediaError              a file that is not a usable video / image
    │   ├── JobNotFoundError        no job with that id
    │   └── ServiceError            the service (--server) refused a request (its HTTP status)
    ├── JobStateError               an operation that the job's state does not allow
    └── JobFailedError              a job ended in failure (the reason says why)
"""

from __future__ import annotations

__all__ = [
    "BatchscoreError",
    "InputError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "MediaError",
    "OutputExistsError",
    "ScriptError",
    "ServiceError",
    "SpecError",
    "UsageError",
    "WorkspaceError",
]


class BatchscoreError(Exception):
    """Base class of every error batchscore raises on purpose."""

    exit_code = 1


class UsageError(BatchscoreError):
    """Bad input from the user: the message says which input and what is wrong."""

    exit_code = 2


class WorkspaceError(UsageError):
    """The workspace or its state database is missing, unreadable, or from a newer version."""


class SpecError(UsageError):
    """A job spec (deployment YAML or CLI flags) is not valid."""


class InputError(UsageError):
    """An input does not exist, matches nothing, or cannot be read."""


class OutputExistsError(UsageError):
    """The output location already holds a finished output and overwrite was not asked for."""


class ScriptError(UsageError):
    """A scoring script is missing, cannot be imported, or breaks the init()/run() contract."""


class MediaError(UsageError):
    """A file is not a usable video or image."""


class JobNotFoundError(UsageError):
    """No job has the given id."""


class ServiceError(UsageError):
    """The service refused a request of its REST API; ``status`` is the HTTP status it
    answered, and the message carries its ``detail``."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class JobStateError(BatchscoreError):
    """The job's state does not allow the operation (for example resuming a finished job)."""

    exit_code = 2


class JobFailedError(BatchscoreError):
    """A job ended in failure; ``job_id`` and ``reason`` say which and why."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason
