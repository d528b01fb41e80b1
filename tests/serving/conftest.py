"""A served stand-in model (no MLflow): the prediction is the sum of the row."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from batchscore.serving import InferenceLogger, ServedModel, create_app

with warnings.catch_warnings():  # starlette warns about its own httpx-based test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SIG = [("age", "double"), ("bmi", "double"), ("visits", "long")]


def total(frame: pd.DataFrame) -> list[float]:
    return frame.sum(axis=1).astype(float).tolist()


@pytest.fixture
def logger(ws):  # type: ignore[no-untyped-def]
    log = InferenceLogger(ws.data, batch_rows=1000, flush_seconds=60)
    yield log
    log.close()


@pytest.fixture
def client(logger):  # type: ignore[no-untyped-def]
    app = create_app(ServedModel("toy", "3", SIG, total), logger=logger, max_body_bytes=2000)
    with TestClient(app) as test_client:
        yield test_client
