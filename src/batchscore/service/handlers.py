"""How the service answers an error: one mapping of exceptions to HTTP statuses, and the
JSON bodies (``{"detail": ...}``; a request that fails validation adds ``errors``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ..errors import BatchscoreError

__all__ = ["install", "status_of"]


def status_of(exc: BaseException) -> int | None:
    """The HTTP status that answers ``exc``: its class's ``http_status`` (batchscore.errors
    is the one place that says it); None for an error that is the service's fault (500)."""
    status = getattr(type(exc), "http_status", 500)
    return None if status == 500 else status


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
