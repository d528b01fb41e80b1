"""One scoring request's exchange, shared by both protocols: the body read within its limit,
decoded within its shape, the request id checked, parsing and the model run in one trip to a
worker thread, and the answer (or the error) rendered; a request's rows are logged only once
its answer is made.

The exchange works on what ASGI gives (the headers, the ``receive`` channel) and returns an
:class:`Answer` (status, JSON bytes, request id), so that the same code serves the scoring
routes straight from :class:`~batchscore.serving.asgi.ScoringMiddleware` (no framework
routing, no body validation layer) and from the FastAPI routes that declare them."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from ..jsonshape import JsonShapeError, check_json_shape
from .datalog import InferenceLogger
from .inputs import InputProblem, parse_csv, parse_mlflow, parse_v2
from .served import ServedModel

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_ELEMENTS", "V2_TYPES", "Answer", "Exchange", "fail",
           "request_id_of"]

MAX_JSON_DEPTH = 32
MAX_JSON_ELEMENTS = 2_000_000  # a 100k-row request of 10 columns holds 1.1 million
SCORING_THREADS = 40  # as many as Starlette's thread pool: slow models wait side by side
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: it is echoed in a header
V2_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
            "boolean": "BOOL", "string": "BYTES"}
log = logging.getLogger("batchscore.serving")


def _error_code(status: int) -> str:
    return {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 404: "NOT_FOUND"}.get(
        status, "INTERNAL_ERROR")


def _render(content: Any) -> bytes:
    """JSON as Starlette's JSONResponse renders it (UTF-8, compact, no NaN)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


class Answer(NamedTuple):
    """A scoring request's answer: its status, its JSON body, the request id it echoes, and
    what to do once it has been sent (``after``: log the request's rows), so that a client
    waits for none of it."""

    status: int
    body: bytes
    request_id: str
    after: Callable[[], None] | None = None

    @classmethod
    def failure(cls, message: str, status: int, request_id: str) -> Answer:
        """The error answer: ``{"error_code", "message"}``."""
        return cls(status, _render({"error_code": _error_code(status), "message": message}),
                   request_id)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The raw ASGI headers, in the order a Starlette response sends them."""
        out = [(b"x-request-id", self.request_id.encode("latin-1"))] if self.request_id else []
        return [*out, (b"content-length", str(len(self.body)).encode("latin-1")),
                (b"content-type", b"application/json")]

    def response(self) -> Response:
        """The same answer as a Starlette response (for a FastAPI route)."""
        return Response(self.body, status_code=self.status, media_type="application/json",
                        headers={"X-Request-ID": self.request_id} if self.request_id else None,
                        background=BackgroundTask(self.after) if self.after else None)


def fail(message: str, status: int, request_id: str) -> JSONResponse:
    """The error answer: ``{"error_code", "message"}``, echoing the request id if any."""
    return JSONResponse({"error_code": _error_code(status), "message": message},
                        status_code=status,
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


def header_id(headers: Mapping[str, str]) -> str:
    """The request's ``X-Request-ID`` (checked), or a new one."""
    given = headers.get("x-request-id")
    return request_id_of(given) if given else uuid.uuid4().hex


def _jsonable(predictions: Any) -> list[Any]:
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    return np.asarray(predictions).tolist()


class Exchange:
    """What a scoring route needs: ``model``, the ``logger`` of its requests, the body limit,
    and the worker threads that parse and predict (:meth:`close` lets them go)."""

    def __init__(self, model: ServedModel, logger: InferenceLogger | None,
                 max_body_bytes: int) -> None:
        self.model, self.logger, self.max_body_bytes = model, logger, max_body_bytes
        self._columns = frozenset(name for name, _ in model.signature)  # every frame's
        self._threads = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="scoring")

    def close(self) -> None:
        """Let the worker threads go once they finish what they hold."""
        self._threads.shutdown(wait=False)

    async def invocations(self, headers: Mapping[str, str], receive: Receive) -> Answer:
        """``POST /invocations``: MLflow's scoring protocol (JSON or ``text/csv``)."""
        request_id = ""
        try:
            request_id = header_id(headers)
            raw = await self.read_body(headers, receive)
        except InputProblem as exc:
            return Answer.failure(str(exc), exc.status, request_id)
        csv = headers.get("content-type", "").split(";")[0].strip() == "text/csv"
        return await self._in_thread(self._invocations, raw, csv, request_id)

    async def infer(self, name: str, headers: Mapping[str, str], receive: Receive) -> Answer:
        """``POST /v2/models/{name}/infer``: the Open Inference Protocol v2."""
        request_id = ""
        try:
            request_id = header_id(headers)
            missing = self.unknown(name, request_id)
            if missing is not None:
                return missing
            raw = await self.read_body(headers, receive)
        except InputProblem as exc:
            return Answer.failure(str(exc), exc.status, request_id)
        return await self._in_thread(self._infer, raw, request_id)

    def unknown(self, name: str, request_id: str) -> Answer | None:
        """404 when ``name`` is not the model served, else None."""
        if name == self.model.name:
            return None
        return Answer.failure(f"no model named {name!r}; this server serves "
                              f"{self.model.name!r}", 404, request_id)

    async def read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        """The body, counted as it streams in: over the limit (declared or not), 413;
        ClientDisconnect if the client goes away first."""
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise InputProblem(f"request body of {declared} bytes is over the limit of "
                               f"{limit} bytes", 413)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InputProblem(f"request body is over the limit of {limit} bytes", 413)
            parts.append(chunk)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _in_thread(self, fn: Callable[..., Answer], *args: Any) -> Answer:
        """``fn(*args)`` in a worker thread: the event loop answers ``/ping`` meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def _invocations(self, raw: bytes, csv: bool, request_id: str) -> Answer:
        signature = self.model.signature
        try:
            frame = parse_csv(raw, signature) if csv else parse_mlflow(decode(raw), signature)
        except InputProblem as exc:
            return Answer.failure(str(exc), exc.status, request_id)
        return self.score(frame, request_id, lambda data: {"predictions": data})

    def _infer(self, raw: bytes, request_id: str) -> Answer:
        model = self.model
        try:
            body = decode(raw)
            frame = parse_v2(body, model.signature)
            given = body.get("id")
            request_id = request_id_of(given) if given is not None else request_id
        except InputProblem as exc:
            return Answer.failure(str(exc), exc.status, request_id)
        kind = V2_TYPES.get(model.output_type, "FP64")
        return self.score(frame, request_id, lambda data: {
            "model_name": model.name, "model_version": model.version, "id": request_id,
            "outputs": [{"name": "predict", "shape": [len(data)], "datatype": kind,
                         "data": data}]})

    def score(self, frame: pd.DataFrame, request_id: str,
              payload_of: Callable[[list[Any]], dict[str, Any]]) -> Answer:
        """Predict ``frame`` and answer ``payload_of(predictions)``; a model that raises is
        answered 500. Runs in a worker thread."""
        try:
            data = _jsonable(self.model.predict(frame))
            if isinstance(data, list) and len(data) != len(frame):
                raise ValueError(f"the model returned {len(data)} predictions for "
                                 f"{len(frame)} rows")
        except Exception as exc:
            return self._model_failed(exc, request_id)
        try:
            return self._answer(payload_of(data), frame, data, request_id)
        except Exception as exc:  # the answer cannot be made: the server's fault
            log.exception("the answer to request %s cannot be sent", request_id)
            return Answer.failure(f"the server failed: {type(exc).__name__}: {exc}", 500,
                                  request_id)

    def _model_failed(self, exc: Exception, request_id: str) -> Answer:
        model = self.model
        log.error("model %s/%s failed on request %s: %s: %s", model.name, model.version,
                  request_id, type(exc).__name__, exc, exc_info=exc)
        return Answer.failure(f"the model failed: {type(exc).__name__}: {exc}", 500,
                              request_id)

    def _answer(self, payload: dict[str, Any], frame: pd.DataFrame, data: list[Any],
                request_id: str) -> Answer:
        """Render the answer; the request's rows are logged with their predictions once it
        has been sent (:attr:`Answer.after`)."""
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        if self.logger is None:
            return Answer(200, body, request_id)
        return Answer(200, body, request_id, after=lambda: self._log(frame, data, request_id))

    def _log(self, frame: pd.DataFrame, data: list[Any], request_id: str) -> None:
        logger = self.logger
        assert logger is not None
        try:
            logger.log(frame, data, request_id=request_id, model=self.model.name,
                       version=self.model.version, columns=self._columns)
        except Exception as exc:  # the client has its answer: the rows are counted as lost
            logger.dropped += len(frame)
            log.error("the rows of request %s cannot be logged: %s: %s", request_id,
                      type(exc).__name__, exc)
