"""The one exception tree (issue 16): every error class batchscore raises on purpose is defined
in ``batchscore.errors``, keeps its exit code, and its ``http_status`` is what the service
answered for it before the service mapped exceptions by that attribute."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import batchscore
from batchscore import errors as E

SRC = Path(batchscore.__file__).resolve().parent

# service/app.py's table before issue 16 (the first class that matches wins), for UsageError
# and JobStateError, the two classes it had handlers for; anything else was a 500.
_STATUS_BEFORE: list[tuple[type[Exception], int]] = [
    (E.LinkError, 403),
    (E.RunNotFoundError, 404), (E.JobNotFoundError, 404), (E.PipelineNotFoundError, 404),
    (E.TriggerNotFoundError, 404), (E.EndpointNotFoundError, 404),
    (E.OutputExistsError, 409), (E.JobStateError, 409), (E.EndpointExistsError, 409),
    (E.ConnectionNotFoundError, 404), (E.ConnectionExistsError, 409),
    (E.UsageError, 400),
]
# Classes whose only way to an HTTP caller went through a route that caught them itself and
# answered another status (so the table above never saw them).
_ROUTES_BEFORE: dict[type[Exception], int] = {
    E.StreamNotFoundError: 404,  # service/streams_api.py _found
    E.StreamUnavailableError: 503,  # service/streams_api.py _found
    E.EventBatchError: 422,  # service/streams_api.py post_events (with the problems)
    E.BundleTooLargeError: 413,  # service/api.py submit (the only route that takes bundles)
    E.OutputGoneError: 404,  # service/outputs_api.py output_rows (the only route reading it)
}
_EXIT_CODES: dict[str, int] = {  # as each class had it where it was defined before
    "BatchscoreError": 1, "JobFailedError": 1, "SmokeTestError": 1,
    "StreamUnavailableError": 1, "UnavailableError": 1, "JobStateError": 2,
}

# new in issue 16: the bases that say what an HTTP caller gets (nothing raised them before)
NEW_BASES = {E.NotFoundError, E.ConflictError, E.ForbiddenError, E.TooLargeError,
             E.UnavailableError}
CLASSES = sorted((c for c in vars(E).values()
                  if inspect.isclass(c) and issubclass(c, E.BatchscoreError)),
                 key=lambda c: c.__name__)


def _status_before(cls: type[Exception]) -> int:
    if cls in _ROUTES_BEFORE:
        return _ROUTES_BEFORE[cls]
    return next((code for kind, code in _STATUS_BEFORE if issubclass(cls, kind)), 500)


def test_every_class_is_exported() -> None:
    assert sorted(c.__name__ for c in CLASSES) == sorted(E.__all__)


@pytest.mark.parametrize("cls", [c for c in CLASSES if c not in NEW_BASES],
                         ids=lambda c: c.__name__)
def test_http_status_is_what_the_service_answered_before(cls: type[E.BatchscoreError]) -> None:
    assert cls.http_status == _status_before(cls)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_exit_code_is_kept(cls: type[E.BatchscoreError]) -> None:
    expected = _EXIT_CODES.get(cls.__name__, 2 if issubclass(cls, E.UsageError) else None)
    assert expected is not None, f"{cls.__name__}: say its exit code in _EXIT_CODES"
    assert cls.exit_code == expected


def test_the_bases_say_what_an_http_caller_gets() -> None:
    assert (E.NotFoundError.http_status, E.ConflictError.http_status,
            E.ForbiddenError.http_status, E.TooLargeError.http_status,
            E.UnavailableError.http_status) == (404, 409, 403, 413, 503)
    assert issubclass(E.OutputGoneError, E.InputError)  # was an InputError: still caught as one
    assert not issubclass(E.JobStateError, E.UsageError)


def test_no_module_defines_an_error_class_of_its_own() -> None:
    """Every subclass of a batchscore error lives in errors.py; a module may keep a private
    exception that never reaches a user (those subclass Exception or ValueError)."""
    names = {c.__name__ for c in CLASSES}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & names or (node.name.endswith("Error") and node.name in names):
                    found.append(f"{path.relative_to(SRC)}: {node.name}")
    assert not found, "error classes outside errors.py:\n" + "\n".join(found)


def test_the_old_import_paths_give_the_same_class() -> None:
    from batchscore.connections import ConnectionNotFoundError
    from batchscore.endpoints import DeploymentNotFoundError, EndpointNotFoundError
    from batchscore.mlops import ModelNotFoundError
    from batchscore.streaming import StreamNotFoundError
    from batchscore.tabular.models import ModelNotFoundError as TabularModelNotFound

    assert ModelNotFoundError is TabularModelNotFound is E.ModelNotFoundError
    assert (ConnectionNotFoundError, DeploymentNotFoundError, EndpointNotFoundError,
            StreamNotFoundError) == (E.ConnectionNotFoundError, E.DeploymentNotFoundError,
                                     E.EndpointNotFoundError, E.StreamNotFoundError)
