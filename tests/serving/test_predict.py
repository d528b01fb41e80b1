"""Which ``predict`` a served model gets: the flavour's own when MLflow's schema enforcement
would change nothing on the frames the app builds, pyfunc's otherwise; the same answers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")
sklearn_linear = pytest.importorskip("sklearn.linear_model")

from mlflow.models import infer_signature  # noqa: E402

from batchscore.serving.folder import load_model_folder  # noqa: E402
from batchscore.serving.inputs import to_frame  # noqa: E402


def _folder(tmp_path, frame: pd.DataFrame, name: str) -> tuple[str, object]:
    x = frame.select_dtypes("number")
    model = sklearn_linear.LinearRegression().fit(x, np.arange(len(x), dtype=float))
    path = tmp_path / name
    with warnings.catch_warnings():  # MLflow's hint about integer columns
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(frame)
    mlflow.sklearn.save_model(model, str(path), signature=signature)
    return str(path), mlflow.pyfunc.load_model(str(path))


def test_a_numeric_signature_skips_the_second_enforcement_with_the_same_answers(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": np.array([3, 1, 2], dtype="int64"),
                          "c": np.array([0.5, 1.5, 9.0], dtype="float32")})
    path, pyfunc = _folder(tmp_path, frame, "numeric")
    served = load_model_folder(path)
    assert served.predict != pyfunc.predict and not getattr(served.predict, "__self__", None)
    rows = to_frame([[1.0, 3, 0.5], [7.5, -2, 2.25]], served.signature)
    assert np.array_equal(np.asarray(served.predict(rows)), np.asarray(pyfunc.predict(rows)))


def test_a_string_column_keeps_pyfuncs_predict(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0], "name": ["x", "y", "z"]})
    path, _ = _folder(tmp_path, frame, "strings")
    served = load_model_folder(path)
    assert getattr(served.predict, "__func__", None) is mlflow.pyfunc.PyFuncModel.predict
