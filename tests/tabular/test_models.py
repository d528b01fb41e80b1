"""Model references: folders, files, MLflow model folders, group templates, the cache."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
from tabular_helpers import expected, fit

from batchscore.errors import InputError, SpecError
from batchscore.tabular.models import (
    ModelCache,
    ModelLoader,
    ModelNotFoundError,
    group_ref,
    hive_ref,
    placeholders,
    plain_value,
)


def test_joblib_file_folder_and_plain_pickle(tmp_path, data):
    model = fit(data)
    joblib.dump(model, tmp_path / "a.joblib")
    (tmp_path / "folder").mkdir()
    with open(tmp_path / "folder" / "model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    loader = ModelLoader(None, tmp_path / "scratch")
    for ref in (tmp_path / "a.joblib", tmp_path / "folder", (tmp_path / "folder").as_uri()):
        loaded = loader.load(str(ref))
        assert loaded.features == ["Value", "Temp"] and not loaded.allow_nan
        np.testing.assert_allclose(loaded.predict(data[["Value", "Temp"]]), expected(data))


def test_mlflow_model_folder_has_typed_columns(tmp_path, data):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    X = data[["Value", "Temp"]]
    model = fit(data)
    mlflow.sklearn.save_model(model, tmp_path / "mlmodel",
                              signature=infer_signature(X, model.predict(X)))
    loaded = ModelLoader(None).load(str(tmp_path / "mlmodel"))
    assert loaded.kind == "pyfunc" and loaded.features == ["Value", "Temp"]
    assert [(c.type, c.required) for c in loaded.columns] == [("double", True)] * 2
    np.testing.assert_allclose(loaded.predict(X), expected(data))


def test_references_that_name_no_model(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    loader = ModelLoader(None)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        loader.load(str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match=r"holds no MLmodel, model\.joblib or model\.pkl"):
        loader.load(str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError, match="is neither a model folder"):
        loader.load(str(tmp_path / "notes.txt"))
    with pytest.raises(SpecError, match="no registry is set"):
        loader.load("models:/m@production")
    with pytest.raises(SpecError, match="must be models:/NAME@ALIAS"):
        ModelLoader("sqlite:///x.db").resolve("models:/m/v3")


def test_an_object_without_predict_is_refused(tmp_path):
    joblib.dump({"weights": [1, 2]}, tmp_path / "model.joblib")
    with pytest.raises(InputError, match="a dict has no predict\\(\\) method"):
        ModelLoader(None).load(str(tmp_path / "model.joblib"))


def test_group_references():
    assert placeholders("models:/s-{Device}-{Sensor}-{Device}@p") == ["Device", "Sensor"]
    assert placeholders("/m/plain") == []
    assert group_ref("models:/s-{Device}-{Sensor}@production",
                     {"Device": np.int64(1), "Sensor": 4.0}) == "models:/s-1-4@production"
    assert group_ref("/m/{Site}", {"Site": "Nord Ost"}) == "/m/Nord Ost"
    assert hive_ref("/m/", {"Device": 2.0, "Site": "a/b c"}) == "/m/Device=2/Site=a%2Fb%20c"
    assert plain_value(np.float64("nan")) is None and plain_value(None) is None
    assert plain_value(np.float64(2.5)) == 2.5 and plain_value("x") == "x"


def test_cache_keeps_the_most_recent_and_remembers_missing(tmp_path, data):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        joblib.dump(fit(data), tmp_path / name / "model.joblib")
    cache = ModelCache(ModelLoader(None), capacity=2)
    a, b = cache.get(str(tmp_path / "a")), cache.get(str(tmp_path / "b"))
    assert cache.get(str(tmp_path / "a")) is a  # a is now the most recent
    cache.get(str(tmp_path / "c"))  # evicts b
    assert cache.get(str(tmp_path / "a")) is a and cache.loads == 3
    assert cache.get(str(tmp_path / "b")) is not b and cache.loads == 4
    assert cache.get(str(tmp_path / "zzz")) is None
    assert cache.missing[str(tmp_path / "zzz")].endswith("zzz does not exist")
    (tmp_path / "zzz").mkdir()
    assert cache.get(str(tmp_path / "zzz")) is None  # not looked up again
