"""The exceptions batchscore raises on purpose: one tree, defined here and nowhere else.

Every message states the broken rule and the offending value, so that the CLI can print it
as it is and exit with the class's ``exit_code`` (2 for bad input), and the service answers
it with the class's ``http_status`` (one handler reads the attribute). The bases under
:class:`UsageError` say what an HTTP caller gets. The tree (HTTP status, exit code)::

    BatchscoreError                   anything batchscore refuses or cannot do     500  1
    ├── UsageError                    bad input from the user                      400  2
    │   ├── ServiceError              the service (--server) refused a request (its HTTP status)
    │   ├── WorkspaceError            workspace or state database missing, unreadable or too new
    │   ├── SecretsFileError          a secrets file that is shared, in a repository or unreadable
    │   ├── SpecError                 a job spec / deployment YAML that is not valid
    │   │   └── MissingCondaFile      an environment's conda file is not there (virtualenv only)
    │   ├── InputError                inputs that do not exist, match nothing, or cannot be read
    │   │   ├── ModelNotFoundError    no model (registered version, alias, folder) of that name
    │   │   └── EventBatchError       a batch of events with bad events (each one named)   422
    │   ├── ScriptError               a scoring script missing, broken or breaking the contract
    │   ├── MediaError                a file that is not a usable video / image
    │   ├── OutputWriteError          an output (a SQL table) that cannot take the predictions
    │   ├── ProjectError              a project folder without params.yaml / a module it needs
    │   ├── DataTestError             data that fails the project's data tests (names the columns)
    │   ├── DeploymentError           a deployment that cannot be started, found, swapped, stopped
    │   ├── StreamBusyError           another live consumer holds the stream's lease
    │   ├── NotFoundError             no such thing                                      404
    │   │   ├── JobNotFoundError      no job with that id
    │   │   ├── RunNotFoundError      no pipeline run with that id
    │   │   ├── PipelineNotFoundError no pipeline of that name
    │   │   ├── TriggerNotFoundError  no trigger of that name or id
    │   │   ├── EndpointNotFoundError no endpoint of that name
    │   │   │   └── DeploymentNotFoundError  no deployment of that name in the endpoint
    │   │   ├── ConnectionNotFoundError  no connection of that name
    │   │   ├── StreamNotFoundError   no stream of that name
    │   │   └── OutputGoneError       a finished job's output is gone (also an InputError)
    │   ├── ConflictError             the thing exists already / is in the way          409
    │   │   ├── OutputExistsError     the output location already holds a finished output
    │   │   ├── EndpointExistsError   an endpoint of that name exists already
    │   │   └── ConnectionExistsError a connection of that name exists already
    │   ├── ForbiddenError            refused whoever asks                               403
    │   │   └── LinkError             a download link that is expired, tampered with or malformed
    │   └── TooLargeError             over a size limit                                  413
    │       └── BundleTooLargeError   a script bundle over a size limit
    ├── JobStateError                 an operation that the job's state does not allow  409  2
    ├── UnavailableError              a server batchscore needs cannot be reached        503  1
    │   └── StreamUnavailableError    the stream's Redis cannot be reached, or the lease was lost
    ├── JobFailedError                a job ended in failure (the reason says why)
    └── SmokeTestError                a release's smoke test failed (``checks`` holds them all)

``JobStateError`` is not a ``UsageError``: the request was well formed, the job's state is in
the way (code that catches ``UsageError`` to rewrite a user's input does not catch it).

The exceptions that never reach a user as such stay with the code that raises and catches
them: the job kinds' ``ContractError`` (``batchscore.jobs.kinds``) and the worker's
``InitError`` (``batchscore.jobs.worker``), which the executors turn into a failed job;
``ScoringError`` (``batchscore.tabular.scoring``: a failed mini-batch, retried by the runner);
``InputProblem`` (``batchscore.serving.inputs``: the online scorer answers it with its own
status, 400 by default, in MLflow's error format);
``JsonShapeError`` (``batchscore.jsonshape``: a ``ValueError`` that the guard answers with a
400); the private ``_Fallback`` of ``batchscore.io.csv`` (the byte scan hands a file to pandas)
and ``_TooLarge`` of ``batchscore.service.guard`` (a body over the limit, answered 413).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BatchscoreError",
    "BundleTooLargeError",
    "ConflictError",
    "ConnectionExistsError",
    "ConnectionNotFoundError",
    "DataTestError",
    "DeploymentError",
    "DeploymentNotFoundError",
    "EndpointExistsError",
    "EndpointNotFoundError",
    "EventBatchError",
    "ForbiddenError",
    "InputError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "LinkError",
    "MediaError",
    "MissingCondaFile",
    "ModelNotFoundError",
    "NotFoundError",
    "OutputExistsError",
    "OutputGoneError",
    "OutputWriteError",
    "PipelineNotFoundError",
    "ProjectError",
    "RunNotFoundError",
    "ScriptError",
    "SecretsFileError",
    "ServiceError",
    "SmokeTestError",
    "SpecError",
    "StreamBusyError",
    "StreamNotFoundError",
    "StreamUnavailableError",
    "TooLargeError",
    "TriggerNotFoundError",
    "UnavailableError",
    "UsageError",
    "WorkspaceError",
]


class BatchscoreError(Exception):
    """Base class of every error batchscore raises on purpose."""

    exit_code = 1
    http_status = 500  # what the service answers (the classes it does not answer stay 500)


class UsageError(BatchscoreError):
    """Bad input from the user: the message says which input and what is wrong."""

    exit_code = 2
    http_status = 400


# -- what an HTTP caller gets: the bases ---------------------------------------------------


class NotFoundError(UsageError):
    """The thing named does not exist."""

    http_status = 404


class ConflictError(UsageError):
    """The thing exists already, or is in the way of the operation."""

    http_status = 409


class ForbiddenError(UsageError):
    """Refused whoever asks (not a question of roles: the request itself is not honoured)."""

    http_status = 403


class TooLargeError(UsageError):
    """A request over a size limit."""

    http_status = 413


class UnavailableError(BatchscoreError):
    """A server that batchscore needs (a broker, a database) cannot be reached just now."""

    http_status = 503


# -- bad input ------------------------------------------------------------------------------


class WorkspaceError(UsageError):
    """The workspace or its state database is missing, unreadable, or from a newer version."""


class SecretsFileError(UsageError):
    """A secrets file that must not be used (shared, inside a repository) or cannot be read."""


class SpecError(UsageError):
    """A job spec (deployment YAML or CLI flags) is not valid."""


class MissingCondaFile(SpecError):
    """The environment's conda file is not there (an error with --env-manager virtualenv
    only: the local environment does not read it)."""


class InputError(UsageError):
    """An input does not exist, matches nothing, or cannot be read."""


class ModelNotFoundError(InputError):
    """A model reference that names no model (no registered version or alias, no such
    folder). Bad input (400): the job or request names a model that is not there."""


class EventBatchError(InputError):
    """A batch holds bad events; nothing of it was written. ``problems`` names every one
    (:class:`batchscore.streaming.errors.EventProblem`); the service answers 422 with them."""

    http_status = 422
    _SHOWN = 10  # problems named in the message; all of them are in ``problems``

    def __init__(self, source: str, problems: Sequence[Any], total: int) -> None:
        self.source, self.problems, self.total = source, problems, total
        bad = len({p.index for p in problems})
        shown = "; ".join(str(p) for p in problems[:self._SHOWN])
        more = f"; and {len(problems) - self._SHOWN} more" if len(problems) > self._SHOWN \
            else ""
        super().__init__(f"{source}: {bad} of {total} events are bad, nothing was written: "
                         f"{shown}{more}")


class ScriptError(UsageError):
    """A scoring script is missing, cannot be imported, or breaks the init()/run() contract."""


class MediaError(UsageError):
    """A file is not a usable video or image."""


class OutputWriteError(UsageError):
    """The output cannot take the predictions (a SQL table without the job id column, or
    with columns of other types); the job stays resumable once it is fixed."""


class ProjectError(UsageError):
    """A project folder is missing params.yaml or a module, or its params are not valid."""


class DataTestError(UsageError):
    """The data failed the project's data tests; the message names every failing column."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("data tests failed:\n  " + "\n  ".join(problems))


class DeploymentError(UsageError):
    """A deployment that cannot be started, found, swapped or stopped; the message says why."""


class StreamBusyError(UsageError):
    """Another live consumer holds the stream's lease."""


# -- not found (404) ------------------------------------------------------------------------


class JobNotFoundError(NotFoundError):
    """No job has the given id."""


class ServiceError(UsageError):
    """The service refused a request of its REST API; ``status`` is the HTTP status it
    answered, and the message carries its ``detail``."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class RunNotFoundError(NotFoundError):
    """No pipeline run has the given id."""


class PipelineNotFoundError(NotFoundError):
    """No pipeline has the given name."""


class TriggerNotFoundError(NotFoundError):
    """No trigger has the given name or id."""


class EndpointNotFoundError(NotFoundError):
    """No endpoint has the given name."""


class DeploymentNotFoundError(EndpointNotFoundError):
    """No deployment of that name in the endpoint."""


class ConnectionNotFoundError(NotFoundError):
    """No connection has the given name."""


class StreamNotFoundError(NotFoundError):
    """No stream has the given name."""


class OutputGoneError(NotFoundError, InputError):
    """A finished job's output is no longer where the job wrote it."""


# -- conflicts (409) ------------------------------------------------------------------------


class OutputExistsError(ConflictError):
    """The output location already holds a finished output and overwrite was not asked for."""


class EndpointExistsError(ConflictError):
    """An endpoint of that name exists already."""


class ConnectionExistsError(ConflictError):
    """A connection of that name exists already."""


# -- forbidden (403), too large (413) --------------------------------------------------------


class LinkError(ForbiddenError):
    """A download link that is expired, tampered with or malformed."""


class BundleTooLargeError(TooLargeError):
    """A script bundle over a size limit."""


# -- not the user's input -------------------------------------------------------------------


class JobStateError(BatchscoreError):
    """The job's state does not allow the operation (for example resuming a finished job)."""

    exit_code = 2
    http_status = 409


class StreamUnavailableError(UnavailableError):
    """The stream's Redis cannot be reached, or a consumer lost its lease."""


class JobFailedError(BatchscoreError):
    """A job ended in failure; ``job_id`` and ``reason`` say which and why."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason


class SmokeTestError(BatchscoreError):
    """A smoke test failed; ``checks`` holds every check, the message names the failing ones."""

    def __init__(self, message: str, checks: Sequence[Any]) -> None:
        super().__init__(message)
        self.checks = checks
