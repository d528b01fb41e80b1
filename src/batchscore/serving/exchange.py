"""One scoring request's exchange, shared by both protocols: the body read within its limit,
decoded within its shape, the request id checked, the model run in a worker thread, and the
answer (or the error) rendered; a request's rows are logged only once its answer is made."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ..jsonshape import JsonShapeError, check_json_shape
from .datalog import InferenceLogger
from .inputs import InputProblem
from .served import ServedModel

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_ELEMENTS", "Exchange", "fail", "request_id_of"]

MAX_JSON_DEPTH = 32
MAX_JSON_ELEMENTS = 2_000_000  # a 100k-row request of 10 columns holds 1.1 million
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: it is echoed in a header
log = logging.getLogger("batchscore.serving")


def fail(message: str, status: int, request_id: str) -> JSONResponse:
    """The error answer: ``{"error_code", "message"}``, echoing the request id if any."""
    code = {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 404: "NOT_FOUND"}.get(
        status, "INTERNAL_ERROR")
    return JSONResponse({"error_code": code, "message": message}, status_code=status,
                        headers={"X-Request-ID": request_id} if request_id else None)


def request_id_of(value: Any) -> str:
    """``value`` as a request id (it travels in a header), or InputProblem."""
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise InputProblem(f"request id {str(value)[:60]!r} is not 1-200 visible ASCII "
                           "characters")
    return value


def decode(raw: bytes) -> Any:
    """The JSON body, refused (InputProblem) when empty, too deep, too large or malformed."""
    if not raw.strip():
        raise InputProblem("request body is empty; send JSON such as "
                           '{"dataframe_split": {"columns": [...], "data": [[...]]}}')
    try:
        check_json_shape(raw, MAX_JSON_DEPTH, MAX_JSON_ELEMENTS)
        return json.loads(raw)
    except JsonShapeError as exc:
        raise InputProblem(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise InputProblem(f"request body is not valid JSON: {exc}") from None


def header_id(request: Request) -> str:
    """The request's ``X-Request-ID`` (checked), or a new one."""
    given = request.headers.get("x-request-id")
    return request_id_of(given) if given else uuid.uuid4().hex


def _jsonable(predictions: Any) -> list[Any]:
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    return np.asarray(predictions).tolist()


@dataclass(frozen=True)
class Exchange:
    """What a scoring route needs beyond parsing: ``model``, the ``logger`` of its requests
    and the body limit."""

    model: ServedModel
    logger: InferenceLogger | None
    max_body_bytes: int

    async def body_of(self, request: Request) -> bytes:
        """The body, counted as it streams in: over the limit (declared or not), 413."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise InputProblem(f"request body of {declared} bytes is over the limit of "
                               f"{limit} bytes", 413)
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InputProblem(f"request body is over the limit of {limit} bytes", 413)
            parts.append(chunk)
        return b"".join(parts)

    def score(self, frame: pd.DataFrame, request_id: str,
              payload_of: Callable[[list[Any]], dict[str, Any]]) -> Response:
        """Predict ``frame`` and answer ``payload_of(predictions)``; a model that raises is
        answered 500. Runs in a worker thread."""
        try:
            data = _jsonable(self.model.predict(frame))
        except Exception as exc:
            return self._model_failed(exc, request_id)
        payload = payload_of(data)
        try:
            return self._answer(payload, frame, data, request_id)
        except Exception as exc:  # the answer cannot be made: the server's fault
            log.exception("the answer to request %s cannot be sent", request_id)
            return fail(f"the server failed: {type(exc).__name__}: {exc}", 500, request_id)

    def _model_failed(self, exc: Exception, request_id: str) -> JSONResponse:
        model = self.model
        log.error("model %s/%s failed on request %s: %s: %s", model.name, model.version,
                  request_id, type(exc).__name__, exc, exc_info=exc)
        return fail(f"the model failed: {type(exc).__name__}: {exc}", 500, request_id)

    def _answer(self, payload: dict[str, Any], frame: pd.DataFrame, data: list[Any],
                request_id: str) -> Response:
        """Render the answer, and only then log the request's rows with their predictions."""
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        if self.logger is not None:
            self.logger.log(frame, data, request_id=request_id, model=self.model.name,
                            version=self.model.version)
        return Response(body, media_type="application/json",
                        headers={"X-Request-ID": request_id})
