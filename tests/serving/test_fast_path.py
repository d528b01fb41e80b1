"""The lean scoring path: column-wise value checks give the frames of the value-by-value
path, answers are the bytes Starlette would send, and the plain ASGI front keeps the app's
behaviour (failures answered 500 and counted, routes measured by their path)."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pandas as pd
import pytest
from fastapi.responses import JSONResponse

from batchscore.serving import ServedModel, create_app
from batchscore.serving.exchange import Answer
from batchscore.serving.inputs import InputProblem, _checked_frame, to_frame

with warnings.catch_warnings():  # starlette warns about its own httpx-based test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SIG = [("age", "double"), ("bmi", "double"), ("visits", "long")]


def total(frame: pd.DataFrame) -> list[float]:
    return frame.sum(axis=1).astype(float).tolist()


KINDS = [("d", "double"), ("f", "float"), ("l", "long"), ("i", "integer"), ("b", "boolean"),
         ("s", "string")]


@pytest.mark.parametrize("rows", [
    [[1.5, 2.5, 3, 4, True, "x"]],
    [[1, 2, 3, 4, False, "y"], [2.5, -0.0, -(2**63), 2**31 - 1, True, ""]],
    [["1.5", 2.0, "3", 4, True, "x"]],  # numbers as text: converted by the checked path
    [[1.5, 2.5, 3.0, 4, True, None]],  # an integral float in a long column; a null string
    [[2**70, 1.0, 1, 1, True, "x"]],  # an int past int64 in a double column
])
def test_column_wise_checks_build_the_frame_of_the_checked_path(rows):
    fast, checked = to_frame(rows, KINDS), _checked_frame(rows, KINDS)
    pd.testing.assert_frame_equal(fast, checked)
    assert list(fast.dtypes.astype(str))[:5] == ["float64", "float32", "int64", "int32", "bool"]


@pytest.mark.parametrize(("rows", "message"), [
    ([[1.0, 1.0, 1, 1, True, "x"], [float("nan"), 1.0, 1, 1, True, "x"]],
     "column 'd' has a missing value (NaN/null) in row 1"),
    ([[1.0, 1e39, 1, 1, True, "x"]], "column 'f' holds 1e+39, out of the range of float"),
    ([[1.0, 1.0, 2**63, 1, True, "x"]], "out of the range of long in row 0"),
    ([[1.0, 1.0, 1, 2**31, True, "x"]], "out of the range of integer in row 0"),
    ([[1.0, 1.0, 1, 1, 1, "x"]], "column 'b' must be boolean, got 1 in row 0"),
    ([[1.0, 1.0, 1, 1, True, 5]], "column 's' must be string, got 5 in row 0"),
    ([[True, 1.0, 1, 1, True, "x"]], "column 'd' must be double, got True (bool) in row 0"),
])
def test_a_refused_value_is_named_as_the_checked_path_names_it(rows, message):
    with pytest.raises(InputProblem, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")):
        to_frame(rows, KINDS)


@pytest.mark.parametrize(("content", "status", "request_id"), [
    ({"error_code": "BAD_REQUEST", "message": "caf\u00e9 \u2603"}, 400, "r-1"),
    ({"error_code": "INTERNAL_ERROR", "message": "x"}, 500, ""),
])
def test_an_error_answer_is_the_response_starlette_would_send(content, status, request_id):
    answer = Answer.failure(content["message"], status, request_id)
    expected = JSONResponse(content, status_code=status,
                            headers={"X-Request-ID": request_id} if request_id else None)
    assert answer.body == expected.body
    assert answer.headers() == expected.raw_headers


def _broken_app() -> Any:
    app = create_app(ServedModel("toy", "3", SIG, total))

    async def boom(*args: Any) -> Answer:
        raise RuntimeError("the exchange broke")

    app.front.exchange.invocations = boom  # type: ignore[method-assign]
    return app


def test_a_failure_nothing_caught_is_answered_500_and_counted():
    with TestClient(_broken_app(), raise_server_exceptions=False) as client:
        r = client.post("/invocations", json={"instances": [[1, 2, 3]]},
                        headers={"X-Request-ID": "r-9"})
        assert r.status_code == 500
        assert r.json() == {"error_code": "INTERNAL_ERROR",
                            "message": "the server failed: RuntimeError: the exchange broke"}
        assert r.headers["x-request-id"] == "r-9"
        text = client.get("/metrics").text
    assert 'batchscore_serving_errors_total{route="/invocations",status="500"} 1.0' in text


def test_other_routes_are_measured_by_their_path_and_other_methods_refused(client):
    assert client.get("/ping").status_code == 200
    assert client.get("/invocations").status_code == 405
    assert client.get("/nowhere").status_code == 404
    text = client.get("/metrics").text
    assert 'batchscore_serving_requests_total{route="/ping",status="200"} 1.0' in text
    assert 'batchscore_serving_requests_total{route="/invocations",status="405"} 1.0' in text
    assert 'batchscore_serving_requests_total{route="unmatched",status="404"} 1.0' in text
    assert "/invocations" in client.get("/openapi.json").json()["paths"]


def test_a_client_that_leaves_before_its_body_is_not_answered():
    app = create_app(ServedModel("toy", "3", SIG, total))
    sent: list[Any] = []

    async def scenario() -> None:
        messages = [{"type": "http.request", "body": b'{"instances"', "more_body": True},
                    {"type": "http.disconnect"}]

        async def receive() -> Any:
            return messages.pop(0)

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/invocations", "root_path": "",
                 "headers": [(b"content-type", b"application/json")], "query_string": b""}
        await app(scope, receive, send)

    asyncio.run(scenario())
    assert sent == []
