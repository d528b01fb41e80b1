"""The scoring server under hostile input (issue 14, Medium): the client's faults answer 400
(or 413), never 500; only server errors count toward the error-rate anomaly; the rows of a
failed request are not logged; a chunked body is limited while it streams; ``predict`` runs
off the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from typing import Any

import pandas as pd
import pytest

from batchscore.serving import InferenceLogger, ServedModel, create_app
from batchscore.serving.anomaly import AnomalyConfig, AnomalyDetector

with warnings.catch_warnings():  # starlette warns about its own httpx-based test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SIG = [("age", "double"), ("bmi", "double"), ("visits", "long")]
INFER = "/v2/models/toy/infer"


def total(frame: pd.DataFrame) -> list[float]:
    return frame.sum(axis=1).astype(float).tolist()


def _tensor(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",
                        "data": [1.0, 2.0, 3], **changes}]}


def _nest(data: Any, levels: int) -> Any:
    for _ in range(levels):
        data = [data]
    return data


CLIENT_FAULTS: list[tuple[str, Any, dict[str, Any]]] = [
    ("/invocations", b'{"dataframe_split": {"columns": ["age", "bmi", "visits"], '
     b'"data": [[' + str(10**400).encode() + b', 1, 2]]}}', {}),
    ("/invocations", {"dataframe_split": {"columns": ["age", "bmi", "visits"],
                                          "data": [[1, 1, 10**30]]}}, {}),
    ("/invocations", {"dataframe_split": {"columns": [["age"], {"b": 1}, "visits"],
                                          "data": [[1, 2, 3]]}}, {}),
    ("/invocations", {"dataframe_split": {"columns": [[1], [2], [3]],
                                          "data": [[1, 2, 3]]}}, {}),
    ("/invocations", b'{"instances": ' + b"[" * 3000 + b"]" * 3000 + b"}", {}),
    ("/invocations", b"[" * 100_000 + b"]" * 100_000, {}),
    (INFER, {"inputs": [{"name": ["age"], "shape": [1], "datatype": "FP64", "data": [1]},
                        {"name": {"x": 1}, "shape": [1], "datatype": "FP64", "data": [1]},
                        {"name": "visits", "shape": [1], "datatype": "INT64", "data": [1]}]},
     {}),
    (INFER, _tensor(data=_nest([1.0, 2.0, 3], 12)), {}),
    (INFER, {**_tensor(), "id": "é€ 中"}, {}),
    (INFER, {**_tensor(), "id": "abc\r\nSet-Cookie: x=1"}, {}),
    (INFER, {**_tensor(), "id": ["not", "a", "string"]}, {}),
    (INFER, _tensor(shape=[True, 3]), {}),
    ("/invocations", {"instances": [[1, 2, 3]]}, {"X-Request-ID": b"caf\xe9"}),
]


@pytest.fixture
def logger(ws):  # type: ignore[no-untyped-def]
    log = InferenceLogger(ws.data, batch_rows=1, flush_seconds=60)
    yield log
    log.close()


def _send(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    if isinstance(body, bytes):
        return client.post(path, content=body,
                           headers={**headers, "content-type": "application/json"})
    return client.post(path, json=body, headers=headers)


@pytest.mark.parametrize(("path", "body", "headers"), CLIENT_FAULTS)
def test_client_faults_are_400_never_500(path, body, headers):
    app = create_app(ServedModel("toy", "3", SIG, total))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = _send(client, path, body, headers)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "BAD_REQUEST"


def test_client_faults_never_raise_the_error_rate_anomaly_nor_get_logged(ws, logger):
    seen: list[Any] = []
    detector = AnomalyDetector("toy/3", AnomalyConfig(min_requests=5, check_every_s=0.0))
    detector.listeners.append(seen.append)
    app = create_app(ServedModel("toy", "3", SIG, total), logger=logger, detector=detector)
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(2):
            for path, body, headers in CLIENT_FAULTS:
                assert _send(client, path, body, headers).status_code == 400
    detector.check()
    assert not [e for e in seen if e.kind == "error_rate"], seen
    logger.close()
    assert ws.data.list("") == [] or not [p for p in ws.data.list("") if p.endswith(".parquet")]


def test_rows_of_a_request_that_failed_are_not_logged(ws, logger):
    def nan_out(frame: pd.DataFrame) -> list[float]:  # answers cannot be rendered as JSON
        return [float("nan")] * len(frame)

    app = create_app(ServedModel("toy", "3", SIG, nan_out), logger=logger)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/invocations", json={"instances": [[1, 2, 3]]})
    assert r.status_code == 500
    logger.close()
    assert not [p for p in ws.data.list("") if p.endswith(".parquet")]


def test_a_chunked_body_is_limited_while_it_streams():
    app = create_app(ServedModel("toy", "3", SIG, total), max_body_bytes=2000)
    pulled = 0

    def chunks():
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"[" + b"1," * 500

    with TestClient(app) as client:
        r = client.post("/invocations", content=chunks(),
                        headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error_code"] == "REQUEST_TOO_LARGE"


def test_predict_runs_off_the_event_loop():
    """While predict is held, /ping answers: the loop is free."""
    entered, release = threading.Event(), threading.Event()

    def held(frame: pd.DataFrame) -> list[float]:
        entered.set()
        assert release.wait(60)
        return total(frame)

    app = create_app(ServedModel("toy", "3", SIG, held))

    async def scenario() -> tuple[int, int]:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            scoring = asyncio.ensure_future(
                client.post("/invocations", json={"instances": [[1, 2, 3]] * 1000}))
            while not entered.is_set():
                assert not scoring.done(), scoring.result().text
                await asyncio.sleep(0.01)
            ping = await asyncio.wait_for(client.get("/ping"), 30)
            release.set()
            return ping.status_code, (await scoring).status_code

    try:
        assert asyncio.run(scenario()) == (200, 200)
    finally:
        release.set()


def test_valid_request_ids_still_travel():
    app = create_app(ServedModel("toy", "3", SIG, total))
    with TestClient(app) as client:
        r = client.post(INFER, json={**_tensor(), "id": "req-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        assert json.loads(r.text)["id"] == "req-42"
