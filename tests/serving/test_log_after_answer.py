"""A request's rows are logged once its answer has been sent (the client waits for none of
it); a model whose inputs the log would hide is refused before any request; a model that
returns the wrong number of predictions is a failed request, logged or not."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from typing import Any

import pandas as pd
import pytest

from batchscore.errors import UsageError
from batchscore.serving import InferenceLogger, ServedModel, create_app
from serving.conftest import SIG, total

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROWS = [[50.0, 30.5, 2], [20, 22.0, 0]]


def _post(app: Any, path: str, body: dict[str, Any], on_body: Any) -> list[dict[str, Any]]:
    """One ASGI request, straight to the app; ``on_body()`` runs when the answer's body is
    sent. Returns the messages sent."""
    raw = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 5000),
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(raw)).encode())]}
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.Event().wait()  # no more: the client waits for its answer
        given = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            on_body()
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize("path", ["/invocations", "/v2/models/toy/infer"])
def test_rows_are_logged_after_the_answer_is_sent(ws, path: str) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=3600)
    app = create_app(ServedModel("toy", "3", SIG, total), logger=logger)
    queued_when_answered: list[int] = []
    body = {"instances": ROWS} if path == "/invocations" else {"inputs": [
        {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [50.0, 30.5, 2, 20, 22.0, 0]}]}
    sent = _post(app, path, body, lambda: queued_when_answered.append(logger._queue.qsize()))
    assert sent[0]["status"] == 200
    assert queued_when_answered == [0]  # nothing logged yet when the body went out
    assert logger._queue.qsize() == 1  # and logged right after
    logger.close()
    frame = pd.read_parquet(ws.data.local_path(logger.written[0]))
    assert frame["prediction"].tolist() == [82.5, 42.0]


def test_the_declared_routes_log_after_the_answer_too(ws) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=3600)
    app = create_app(ServedModel("toy", "3", SIG, total), logger=logger)
    app.front = None  # FastAPI's own routes (what serves them when the middleware is off)
    with TestClient(app) as client:
        answer = client.post("/invocations", json={"instances": ROWS})
        assert answer.status_code == 200 and answer.json() == {"predictions": [82.5, 42.0]}
    assert logger.written and logger.dropped == 0  # closed at shutdown, after the log


@pytest.mark.parametrize("column", ["model", "version", "request_id", "logged_at",
                                    "prediction"])
def test_a_model_whose_inputs_the_log_would_hide_is_refused_at_start(ws, column) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=3600)
    model = ServedModel("toy", "3", [*SIG, (column, "double")], total)
    with pytest.raises(UsageError, match=rf"model toy/3 has input column\(s\) {column}, "
                                         r"which the request log keeps for its own .*--no-log"):
        create_app(model, logger=logger)
    assert not logger._thread.is_alive()  # the logger is closed with the refusal
    create_app(model, logger=None)  # without request logs it serves


@pytest.mark.parametrize("logged", [True, False])
def test_a_model_returning_the_wrong_number_of_predictions_fails_the_request(ws, logged) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=3600) if logged else None
    app = create_app(ServedModel("toy", "3", SIG, lambda frame: [1.0]), logger=logger)
    with TestClient(app) as client:
        answer = client.post("/invocations", json={"instances": ROWS})
    assert answer.status_code == 500
    assert answer.json()["message"] == ("the model failed: ValueError: the model returned 1 "
                                        "predictions for 2 rows")
    if logger is not None:
        assert logger.written == [] and logger.dropped == 0


def test_rows_that_cannot_be_logged_after_the_answer_are_counted(ws, caplog) -> None:  # type: ignore[no-untyped-def]
    logger = InferenceLogger(ws.data, flush_seconds=3600)
    app = create_app(ServedModel("toy", "3", SIG, lambda frame: 7.0), logger=logger)  # a scalar
    with caplog.at_level(logging.ERROR, "batchscore.serving"), TestClient(app) as client:
        answer = client.post("/invocations", json={"instances": ROWS[:1]},
                             headers={"X-Request-ID": "r-1"})
    assert answer.status_code == 200 and answer.json() == {"predictions": 7.0}
    assert logger.dropped == 1 and logger.written == []
    assert "the rows of request r-1 cannot be logged: TypeError" in caplog.text
