"""``batchscore model serve --model-dir`` answers MLflow's scoring protocol as ``mlflow
models serve`` does: both servers score the same model over a corpus of requests, and
their answers are compared (the success or failure of each, and the predictions).

Deliberate differences (also in docs/azureml.md): MLflow truncates 1.5 sent for a long
column to 1 and takes true for 1; batchscore refuses both (400), since a silently changed
value scores the wrong row. (A model returning a pandas Series is answered as a list of
values here, as ``{"0": value}`` objects by MLflow; the model here returns an array.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from batchscore.serving.app import create_app
from batchscore.serving.folder import load_model_folder
from servers import free_port
from service.svc_helpers import wait_for

MODEL_CODE = '''
import mlflow
import pandas as pd


class Scores(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        names = model_input["name"].fillna("").astype(str).str.len()
        scores = model_input["age"] * 2 + names + (model_input["x"] > 0)
        return scores.astype("int64").to_numpy()


mlflow.models.set_model(Scores())
'''

COLUMNS = ["age", "name", "x"]
SPLIT = "application/json"
CSV = "text/csv"
CORPUS: list[tuple[str, str, Any]] = [
    ("split", SPLIT, {"dataframe_split": {"columns": COLUMNS, "data": [[30, "ab", 0.5]]}}),
    ("split, a column the model does not use", SPLIT,
     {"dataframe_split": {"columns": [*COLUMNS, "extra"], "data": [[30, "ab", 0.5, 9]]}}),
    ("split, columns in another order", SPLIT,
     {"dataframe_split": {"columns": ["x", "age", "name"], "data": [[-1.0, 4, "abc"]]}}),
    ("split, '63' for a long", SPLIT,
     {"dataframe_split": {"columns": COLUMNS, "data": [["63", "a", 0.5]]}}),
    ("split, '2.5' for a double", SPLIT,
     {"dataframe_split": {"columns": COLUMNS, "data": [[1, "a", "2.5"]]}}),
    ("split, null in a string column", SPLIT,
     {"dataframe_split": {"columns": COLUMNS, "data": [[63, None, 0.5]]}}),
    ("records, a key the model does not use", SPLIT,
     {"dataframe_records": [{"age": 1, "name": "a", "x": 1.5, "zz": 3}]}),
    ("inputs, columns", SPLIT, {"inputs": {"age": [1, 2], "name": ["a", "bb"], "x": [0, 1]}}),
    ("instances, records", SPLIT, {"instances": [{"age": 1, "name": "a", "x": 0.5}]}),
    ("csv", CSV, "age,name,x\n1,a,0.5\n2,bb,-1.5\n"),
    ("csv, an empty string field", CSV, "age,name,x\n7,,0.5\n"),
    ("csv, a column the model does not use", CSV, "age,name,x,other\n1,a,0.5,z\n"),
    ("csv, a missing column", CSV, "age,name\n1,a\n"),
    ("csv, not CSV", CSV, "\x00\x01\n\"unclosed"),
    ("missing column", SPLIT, {"dataframe_split": {"columns": ["age", "name"],
                                                   "data": [[1, "a"]]}}),
    ("'abc' for a long", SPLIT,
     {"dataframe_split": {"columns": COLUMNS, "data": [["abc", "a", 0.5]]}}),
    ("null for a long", SPLIT,
     {"dataframe_split": {"columns": COLUMNS, "data": [[None, "a", 0.5]]}}),
    ("not JSON", SPLIT, "{"),
    ("no known key", SPLIT, {"rows": [[1, "a", 0.5]]}),
]
DELIBERATE: list[tuple[str, str, Any]] = [
    ("1.5 for a long", SPLIT, {"dataframe_split": {"columns": COLUMNS,
                                                   "data": [[1.5, "a", 0.5]]}}),
    ("true for a long", SPLIT, {"dataframe_split": {"columns": COLUMNS,
                                                    "data": [[True, "a", 0.5]]}}),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    root = tmp_path_factory.mktemp("parity")
    code = root / "model_code.py"
    code.write_text(textwrap.dedent(MODEL_CODE))
    signature = ModelSignature(
        Schema([ColSpec("long", "age"), ColSpec("string", "name"), ColSpec("double", "x")]),
        Schema([ColSpec("long")]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(root / "model"), python_model=str(code),
                                 signature=signature)
    return root / "model"


@pytest.fixture(scope="module")
def mlflow_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
             "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "-w", "1"],
            stdout=out, stderr=subprocess.STDOUT,
            # it runs uvicorn by name: this environment's, as `mlflow models serve` would
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                 f"{os.environ.get('PATH', '')}"})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/ping", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=120)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def ours(model_dir: Path):  # type: ignore[no-untyped-def]
    with TestClient(create_app(load_model_folder(model_dir))) as client:
        yield client


def _body(content_type: str, body: Any) -> bytes:
    return (body if isinstance(body, str) else json.dumps(body)).encode()


def _answer(response: Any) -> tuple[int, Any]:
    ok = response.status_code == 200
    return (2 if ok else response.status_code // 100,
            response.json()["predictions"] if ok else None)


@pytest.mark.parametrize(("what", "content_type", "body"), CORPUS, ids=[c[0] for c in CORPUS])
def test_same_answer_as_mlflow(mlflow_server: str, ours: TestClient, what: str,
                               content_type: str, body: Any) -> None:
    headers = {"Content-Type": content_type}
    theirs = httpx.post(f"{mlflow_server}/invocations", content=_body(content_type, body),
                        headers=headers, timeout=30)
    mine = ours.post("/invocations", content=_body(content_type, body), headers=headers)
    assert _answer(mine) == _answer(theirs), (what, mine.text, theirs.text)


@pytest.mark.parametrize(("what", "content_type", "body"), DELIBERATE,
                         ids=[c[0] for c in DELIBERATE])
def test_deliberate_differences(mlflow_server: str, ours: TestClient, what: str,
                                content_type: str, body: Any) -> None:
    headers = {"Content-Type": content_type}
    theirs = httpx.post(f"{mlflow_server}/invocations", content=_body(content_type, body),
                        headers=headers, timeout=30)
    mine = ours.post("/invocations", content=_body(content_type, body), headers=headers)
    assert theirs.status_code == 200, theirs.text  # MLflow changes the value and scores it
    assert mine.status_code == 400 and "must be long" in mine.text


def test_oip_metadata_reports_the_signature_output_type(ours: TestClient) -> None:
    meta = ours.get("/v2/models/model").json()
    assert meta["outputs"][0]["datatype"] == "INT64"
    answer = ours.post("/v2/models/model/infer", json={"inputs": [
        {"name": "age", "shape": [1], "datatype": "INT64", "data": [2]},
        {"name": "name", "shape": [1], "datatype": "BYTES", "data": ["a"]},
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}).json()
    assert answer["outputs"][0]["datatype"] == "INT64" and answer["outputs"][0]["data"] == [6]
