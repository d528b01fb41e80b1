"""How the service answers an error: one mapping of exceptions to HTTP statuses, and the
JSON bodies (``{"detail": ...}``; a request that fails validation adds ``errors``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ..connections import ConnectionExistsError, ConnectionNotFoundError
from ..endpoints import EndpointExistsError, EndpointNotFoundError
from ..errors import BatchscoreError, JobNotFoundError, JobStateError, OutputExistsError, UsageError
from ..jobs.bundle import BundleTooLargeError
from ..pipelines import PipelineNotFoundError, RunNotFoundError
from ..streaming import StreamNotFoundError, StreamUnavailableError
from ..triggers import TriggerNotFoundError
from .links import LinkError
from .output_rows import OutputGoneError

__all__ = ["install", "status_of"]

# The statuses of the exceptions that do not say their own (``http_status``); the first that
# matches wins, so a subclass comes before its base.
_STATUS: list[tuple[type[Exception], int]] = [
    (LinkError, 403),
    (RunNotFoundError, 404), (JobNotFoundError, 404), (PipelineNotFoundError, 404),
    (TriggerNotFoundError, 404), (EndpointNotFoundError, 404), (StreamNotFoundError, 404),
    (OutputGoneError, 404),
    (OutputExistsError, 409), (JobStateError, 409), (EndpointExistsError, 409),
    (ConnectionNotFoundError, 404), (ConnectionExistsError, 409),
    (BundleTooLargeError, 413),
    (StreamUnavailableError, 503),
    (UsageError, 400),
]


def status_of(exc: BaseException) -> int | None:
    """The HTTP status that answers ``exc``: its class's ``http_status`` when it has one,
    else the table's; None for an error that is the service's fault (500)."""
    status = getattr(type(exc), "http_status", None)
    if isinstance(status, int):
        return status
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), None)


async def _refused(_request: Request, exc: Exception) -> Response:
    status = status_of(exc)
    if status is None:
        raise exc  # not the caller's fault: the server error middleware answers 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    reason = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": reason or "invalid request",
                         "errors": json.loads(json.dumps(errors, default=str))},
                        status_code=422)


def _openapi(app: FastAPI) -> Any:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        """The document says what ``_invalid`` answers: a ``detail`` sentence and the list of
        ``errors`` (FastAPI's default declares ``detail`` as that list)."""
        if app.openapi_schema is None:
            schema = plain()
            found = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in found:
                found["HTTPValidationError"] = {
                    "title": "HTTPValidationError", "type": "object", "required": ["detail"],
                    "properties": {"detail": {"type": "string", "title": "Detail"},
                                   "errors": {"type": "array", "items": {"type": "object"},
                                              "title": "Errors"}}}
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    """Answer batchscore's errors and invalid requests as the API documents them."""
    app.add_exception_handler(BatchscoreError, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
