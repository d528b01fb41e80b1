"""Both scoring protocols, every refusal with its message, request logs and metrics."""

from __future__ import annotations

import json

import pandas as pd
import pytest

ROWS = [[50.0, 30.5, 2], [20, 22.0, 0]]
SUMS = [82.5, 42.0]


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": ["age", "bmi", "visits"], "data": ROWS}},
    {"dataframe_split": {"columns": ["visits", "bmi", "age"],
                         "data": [[2, 30.5, 50.0], [0, 22.0, 20]]}},
    {"dataframe_split": {"data": ROWS}},
    {"dataframe_records": [{"age": 50.0, "bmi": 30.5, "visits": 2},
                           {"bmi": 22.0, "age": 20, "visits": 0}]},
    {"instances": ROWS},
    {"inputs": ROWS},
    {"inputs": {"age": [50.0, 20], "bmi": [30.5, 22.0], "visits": [2, 0]}},
])
def test_mlflow_protocol_accepts_every_format(client, body):
    response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": SUMS}
    assert len(response.headers["x-request-id"]) == 32


def test_health_and_version(client):
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/version").json() == {"model": "toy", "version": "3"}
    assert client.get("/v2/health/ready").json() == {"ready": True, "live": True}
    assert client.get("/v2/models/toy/ready").json() == {"name": "toy", "ready": True}


@pytest.mark.parametrize(("body", "message"), [
    ({"instances": [[1.0, 2.0]]},
     "instances row 0 has 2 values; the model expects 3 columns (age, bmi, visits)"),
    ({"dataframe_split": {"columns": ["age", "bmi"], "data": [[1.0, 2.0]]}},
     "dataframe_split: missing columns: visits (the model expects age, bmi, visits)"),
    ({"dataframe_records": [{"age": 1.0, "bmi": 2.0, "weight": 3}]},
     "dataframe_records row 0: missing columns: visits (the model expects age, bmi, visits)"),
    ({"instances": [[1.0, "fat", 2]]},
     "column 'bmi' must be double, got 'fat' (str) in row 0"),
    ({"instances": [[1.0, 2.0, 2.5]]}, "column 'visits' must be long, got 2.5 (float) in row 0"),
    ({"instances": [[1.0, 2.0, 1], [True, 2.0, 1]]},
     "column 'age' must be double, got True (bool) in row 1"),
    ({"instances": [[1.0, None, 1]]}, "column 'bmi' has a missing value (NaN/null) in row 0"),
    ({"instances": []}, "the request holds no rows to score"),
    ({"rows": [[1.0, 2.0, 1]]}, "the body must hold exactly one of dataframe_split, "
     "dataframe_records, instances, inputs; got rows"),
    ([1, 2], "the body must be a JSON object with one of dataframe_split, dataframe_records, "
     "instances, inputs"),
])
def test_mlflow_protocol_refuses_bad_inputs_with_a_clear_message(client, body, message):
    response = client.post("/invocations", json=body)
    assert response.status_code == 400
    assert response.json() == {"error_code": "BAD_REQUEST", "message": message}


def test_nan_empty_invalid_and_oversized_bodies(client):
    nan = client.post("/invocations", content='{"instances": [[1.0, NaN, 1]]}')
    assert nan.status_code == 400
    assert nan.json()["message"] == "column 'bmi' has a missing value (NaN/null) in row 0"
    empty = client.post("/invocations", content=b"")
    assert empty.status_code == 400
    assert empty.json()["message"].startswith("request body is empty; send JSON such as")
    broken = client.post("/invocations", content=b"{nope")
    assert broken.status_code == 400
    assert broken.json()["message"].startswith("request body is not valid JSON: ")
    big = client.post("/invocations", json={"instances": [[1.0, 2.0, 3]] * 200})
    assert big.status_code == 413
    assert big.json()["message"] == (
        f"request body of {len(big.request.content)} bytes is over the limit of 2000 bytes")


def test_open_inference_protocol(client):
    meta = client.get("/v2/models/toy").json()
    assert meta["inputs"] == [{"name": "age", "datatype": "FP64", "shape": [-1]},
                              {"name": "bmi", "datatype": "FP64", "shape": [-1]},
                              {"name": "visits", "datatype": "INT64", "shape": [-1]}]
    one = {"id": "req-1", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64",
                                       "data": [50.0, 30.5, 2, 20, 22.0, 0]}]}
    response = client.post("/v2/models/toy/infer", json=one)
    assert response.status_code == 200, response.text
    assert response.json() == {"model_name": "toy", "model_version": "3", "id": "req-1",
                               "outputs": [{"name": "predict", "shape": [2],
                                            "datatype": "FP64", "data": SUMS}]}
    per_column = {"inputs": [
        {"name": "age", "shape": [2], "datatype": "FP64", "data": [50.0, 20]},
        {"name": "bmi", "shape": [2], "datatype": "FP64", "data": [30.5, 22.0]},
        {"name": "visits", "shape": [2], "datatype": "INT64", "data": [2, 0]}]}
    assert client.post("/v2/models/toy/infer", json=per_column).json()["outputs"][0][
        "data"] == SUMS


@pytest.mark.parametrize(("body", "message"), [
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]},
     "input 'x' has 2 columns; the model expects 3 (age, bmi, visits)"),
    ({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1.0, 2.0, 3]}]},
     "input 'x': shape [2, 3] needs 6 values, got 3"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",
                  "data": ["a", 2.0, 3]}]}, "column 'age' must be double, got 'a' (str) in row 0"),
    ({"inputs": []}, "the body must be an object with a non-empty 'inputs' list of tensors"),
    ({"inputs": [{"name": "x"}]}, "every input tensor needs name, shape, datatype and data"),
])
def test_open_inference_protocol_refuses_bad_inputs(client, body, message):
    response = client.post("/v2/models/toy/infer", json=body)
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_an_unknown_model_name_is_a_404(client):
    response = client.post("/v2/models/other/infer", json={})
    assert response.status_code == 404
    assert response.json()["message"] == "no model named 'other'; this server serves 'toy'"


def test_requests_are_logged_to_the_data_store_by_hour(ws, client, logger):
    client.post("/invocations", json={"instances": ROWS}, headers={"X-Request-ID": "abc"})
    client.post("/invocations", json={"instances": [[1.0, 2.0]]})  # refused: not logged
    client.post("/v2/models/toy/infer", json={"id": "v2-req", "inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 1.0, 1]}]})
    logger.close()
    assert len(logger.written) == 1
    rel = logger.written[0]
    assert rel.startswith("inference-logs/dt=") and "/hour=" in rel and rel.endswith(".parquet")
    frame = pd.read_parquet(ws.data.local_path(rel))
    assert list(frame.columns) == ["request_id", "logged_at", "model", "version", "age", "bmi",
                                   "visits", "prediction"]
    assert frame["request_id"].tolist() == ["abc", "abc", "v2-req"]
    assert frame["prediction"].tolist() == [*SUMS, 3.0]
    hour = frame["logged_at"].iloc[0].strftime("dt=%Y-%m-%d/hour=%H")
    assert rel.startswith(f"inference-logs/{hour}/")


def test_metrics_count_requests_errors_and_latency(client):
    client.post("/invocations", json={"instances": ROWS})
    client.post("/invocations", json={"instances": [[1.0]]})
    text = client.get("/metrics").text
    assert ('batchscore_serving_requests_total{route="/invocations",status="200"} 1.0'
            in text)
    assert 'batchscore_serving_errors_total{route="/invocations",status="400"} 1.0' in text
    assert 'batchscore_serving_request_seconds_count{route="/invocations"} 2.0' in text
    json.loads(client.get("/version").text)
