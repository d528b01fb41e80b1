"""Many models: each group of rows scored by its own model, from a folder or a registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tabular_helpers import GROUPS, expected

from batchscore.errors import SpecError
from batchscore.jobs import job_logs, list_jobs, run_job, submit_job
from batchscore.tabular import tabular_spec
from batchscore.tabular.models import ModelNotFoundError


def factor(frame: pd.DataFrame) -> np.ndarray:
    return (10 * frame["Device"] + frame["Sensor"]).to_numpy(dtype=float)


def test_hive_folder_one_model_per_group_missing_group_reported(ws, tmp_path, data,
                                                                hive_models):
    models = hive_models(GROUPS[:2])  # no model for Device=2, Sensor=1
    src = tmp_path / "in.csv"
    data.to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    spec = tabular_spec(str(models), group_by=["Device", "Sensor"], keys=["TS", "Device",
                                                                           "Sensor"],
                        mini_batch_size=25, model_cache=1)  # evicted and loaded again
    job = run_job(ws, spec, [str(src)], str(out))
    scored = data[(data.Device != 2)]
    assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 40, 20)
    got = pd.read_parquet(out)
    assert got["TS"].tolist() == scored["TS"].tolist()  # input order across groups
    np.testing.assert_allclose(got["prediction"], factor(scored) * expected(scored))
    errors = pd.read_csv(tmp_path / "out_errors.csv")
    missing = f"no model for Device=2, Sensor=1 ({models}/Device=2/Sensor=1)"
    assert errors["row"].tolist() == data.index[data.Device == 2].tolist()
    assert set(errors["problem"]) == {missing}
    assert errors["keys"][0] == f"TS={data.TS[2]}, Device=2, Sensor=1"
    events = [e for e in job_logs(ws, job.id).events if e["event"] == "items-failed"]
    assert len(events) == 3 and all(missing in e["error"] for e in events)


def test_group_without_a_feature_column_rejects_its_rows(ws, tmp_path, data, hive_models):
    models = hive_models()
    folder = tmp_path / "in"
    folder.mkdir()
    data[:30].to_parquet(folder / "a.parquet")
    data[30:].drop(columns=["Temp"]).to_parquet(folder / "b.parquet")
    spec = tabular_spec(str(models), group_by=["Device", "Sensor"])
    job = run_job(ws, spec, [str(folder)], str(tmp_path / "out"))
    assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 30, 30)
    errors = pd.read_csv(tmp_path / "out" / "_errors.csv")
    assert errors["row"].tolist() == list(range(30))  # row numbers within b.parquet
    assert set(errors["input"]) == {(folder / "b.parquet").as_uri()}
    assert set(zip(errors["column"], errors["problem"], strict=True)) == {
        ("Temp", "missing column Temp (the model needs it)")}


def test_missing_group_values_are_rejected(ws, tmp_path, data, hive_models):
    models = hive_models()
    gaps = data.astype({"Device": "float64"})
    gaps.loc[[4, 5], "Device"] = np.nan  # read back as float: 1.0 must still find Device=1
    src = tmp_path / "in.csv"
    gaps.to_csv(src, index=False)
    job = run_job(ws, tabular_spec(str(models), group_by=["Device", "Sensor"]), [str(src)],
                  str(tmp_path / "o.csv"))
    assert (job.items_succeeded, job.items_failed) == (58, 2)
    errors = pd.read_csv(tmp_path / "o_errors.csv")
    assert errors[["row", "column", "problem"]].values.tolist() == [
        [4, "Device", "missing value in group column Device"],
        [5, "Device", "missing value in group column Device"]]
    got = pd.read_csv(tmp_path / "o.csv")
    assert got["Device"].tolist() == data.drop(index=[4, 5])["Device"].astype(float).tolist()


def test_hive_folder_that_is_not_one(ws, tmp_path, data, model_dir):
    src = tmp_path / "in.csv"
    data.to_csv(src, index=False)
    with pytest.raises(ModelNotFoundError, match=r"holds no Device=\.\.\. folders"):
        submit_job(ws, tabular_spec(str(model_dir), group_by=["Device"]), [str(src)],
                   str(tmp_path / "o"))
    with pytest.raises(ModelNotFoundError, match="no such folder exists"):
        submit_job(ws, tabular_spec(str(tmp_path / "nope"), group_by=["Device"]), [str(src)],
                   str(tmp_path / "o"))
    with pytest.raises(SpecError, match=r"needs \{Column\} placeholders"):
        submit_job(ws, tabular_spec("models:/m@production", group_by=["Device"],
                                    registry_uri="sqlite:///x.db"), [str(src)],
                   str(tmp_path / "o"))
    assert list_jobs(ws) == []


def test_registry_template_one_model_per_group(ws, tmp_path, data, registry):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    spec = tabular_spec("models:/sensor-{Device}-{Sensor}@production",
                        group_by=["Device", "Sensor"], keys=["TS", "Device", "Sensor"],
                        registry_uri=registry.uri, mini_batch_size=30)
    job = run_job(ws, spec, [str(src)], str(tmp_path / "out"))
    assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 40, 20)
    got = pd.read_parquet(tmp_path / "out")
    scored = data[data.Device != 2]
    np.testing.assert_allclose(got["prediction"], factor(scored) * expected(scored))
    errors = pd.read_csv(tmp_path / "out" / "_errors.csv")
    assert set(errors["problem"]) == {
        "no model for Device=2, Sensor=1 (models:/sensor-2-1@production)"}
    view = job_logs(ws, job.id)
    assert "no model for Device=2, Sensor=1 (models:/sensor-2-1@production)" in view.errors


@pytest.mark.parametrize(("ref", "version", "scale"), [
    ("models:/single@production", 2, 5.0),
    ("models:/single/1", 1, 3.0),
    ("models:/single", 2, 5.0),  # the latest version
])
def test_registry_model_is_pinned_for_the_job(ws, tmp_path, data, registry, ref, version,
                                              scale):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    job = run_job(ws, tabular_spec(ref, registry_uri=registry.uri), [str(src)],
                  str(tmp_path / "o.parquet"))
    assert job.state == "succeeded"
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "o.parquet")["prediction"],
                               scale * expected(data))
    pin = json.loads(ws.system.read_text(f"jobs/{job.id}/tabular.json"))
    assert (pin["model"], pin["requested"]) == (f"models:/single/{version}", ref)


def test_caller_pinned_version_keeps_the_reference_it_came_from(ws, tmp_path, data,
                                                                 registry):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    spec = tabular_spec("models:/single/2", registry_uri=registry.uri)
    spec = spec.model_copy(update={"options": {**spec.options,
                                               "model_ref": "models:/single@production"}})
    job = run_job(ws, spec, [str(src)], str(tmp_path / "o"))
    pin = json.loads(ws.system.read_text(f"jobs/{job.id}/tabular.json"))
    assert (pin["model"], pin["requested"]) == ("models:/single/2", "models:/single@production")


def test_registry_model_from_the_environment(ws, tmp_path, data, registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    job = run_job(ws, tabular_spec("models:/single/1"), [str(src)], str(tmp_path / "o"))
    assert job.state == "succeeded" and job.items_succeeded == 60


@pytest.mark.parametrize(("ref", "message"), [
    ("models:/nope@production", "model models:/nope@production does not resolve in the "
                                "registry sqlite:///"),
    ("models:/single@staging", "model models:/single@staging does not resolve"),
    ("models:/single/9", "model models:/single/9 does not resolve"),
])
def test_registry_ref_that_does_not_resolve(ws, tmp_path, data, registry, ref, message):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    with pytest.raises(ModelNotFoundError) as exc:
        submit_job(ws, tabular_spec(ref, registry_uri=registry.uri), [str(src)],
                   str(tmp_path / "o"))
    assert str(exc.value).startswith(message)
    assert list_jobs(ws) == []


def test_typed_signature_rejects_values_per_row(ws, tmp_path, data, registry):
    bad = data.astype({"Temp": object})
    bad.loc[2, "Temp"] = "warm"
    src = tmp_path / "in.csv"
    bad.to_csv(src, index=False)
    job = run_job(ws, tabular_spec("models:/single/1", registry_uri=registry.uri, keys=["TS"]),
                  [str(src)], str(tmp_path / "o.csv"))
    assert (job.items_succeeded, job.items_failed) == (59, 1)
    errors = pd.read_csv(tmp_path / "o_errors.csv")
    assert errors[["row", "column", "problem"]].values.tolist() == [
        [2, "Temp", "value 'warm' is not a number (the model takes double)"]]
