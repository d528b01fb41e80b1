"""Tabular jobs through the job API: file inputs and outputs, options, bad rows, submit errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tabular_helpers import TwoColumns, expected

from batchscore.errors import InputError, OutputExistsError, SpecError
from batchscore.jobs import job_logs, list_jobs, list_minibatches, run_job, submit_job
from batchscore.jobs.spec import spec_from_mapping
from batchscore.tabular import TabularOptions, tabular_spec
from batchscore.tabular.job import DEFAULT_ROWS, parse_options
from batchscore.tabular.models import ModelNotFoundError
from helpers import pid_alive, wait_for


def parquet(path: Path, frame: pd.DataFrame, row_group_size: int | None = None) -> Path:
    frame.to_parquet(path, index=False, row_group_size=row_group_size)
    return path


def test_parquet_in_folder_out(ws, executor, tmp_path, data, model_dir):
    src = parquet(tmp_path / "in.parquet", data, row_group_size=16)
    out = tmp_path / "out"
    spec = tabular_spec(str(model_dir), keys=["TS", "Device"], mini_batch_size=20)
    job = run_job(ws, spec, [str(src)], str(out))
    assert (job.state, job.items_total, job.items_succeeded, job.items_failed) == \
        ("succeeded", 60, 60, 0)
    assert [mb.n_items for mb in list_minibatches(ws, job.id)] == [16, 16, 16, 12]
    names = sorted(p.name for p in out.iterdir())
    assert names == [".batchscore-job.json", "_SUCCESS", "part-00000.parquet",
                     "part-00001.parquet", "part-00002.parquet", "part-00003.parquet"]
    got = pd.read_parquet(out / "part-00000.parquet")
    assert list(got.columns) == ["TS", "Device", "prediction", "batchscore_job_id"]
    whole = pd.concat(pd.read_parquet(out / f"part-{i:05d}.parquet") for i in range(4))
    assert whole["TS"].tolist() == data["TS"].tolist()  # input order
    np.testing.assert_allclose(whole["prediction"], expected(data))
    assert set(whole["batchscore_job_id"]) == {job.id}
    assert json.loads((out / ".batchscore-job.json").read_text())["job"] == job.id


def test_csv_in_csv_file_out(ws, tmp_path, data, model_dir):
    src = tmp_path / "in.csv"
    data.to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    job = run_job(ws, tabular_spec(str(model_dir), keys=["TS"], mini_batch_size=25),
                  [str(src)], str(out))
    assert job.state == "succeeded" and job.minibatches_total == 3
    got = pd.read_csv(out)
    assert list(got.columns) == ["TS", "prediction", "batchscore_job_id"]
    assert got["TS"].tolist() == data["TS"].tolist()
    np.testing.assert_allclose(got["prediction"], expected(data))
    assert not (tmp_path / "scores_errors.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp


def test_parquet_file_out_from_a_folder_of_inputs(ws, tmp_path, data, model_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    parquet(folder / "a.parquet", data[:30])
    data[30:].to_csv(folder / "b.csv", index=False)
    (folder / "_SUCCESS").write_text("")  # a marker of the tool that wrote the folder
    out = tmp_path / "scores.parquet"
    job = run_job(ws, tabular_spec(str(model_dir), keys=["TS"]), [str(folder)], str(out))
    assert job.state == "succeeded" and job.inputs == [(folder / "a.parquet").as_uri(),
                                                       (folder / "b.csv").as_uri()]
    assert job.minibatches_total == 2  # DEFAULT_ROWS per mini-batch, one per file
    got = pd.read_parquet(out)
    assert got["TS"].tolist() == data["TS"].tolist()
    np.testing.assert_allclose(got["prediction"], expected(data))


def test_spec_yaml_form_and_defaults(tmp_path, model_dir):
    spec = spec_from_mapping({"kind": "tabular", "options": {
        "model": str(model_dir), "group_by": "Device, Sensor"}})
    assert spec.mini_batch_size == DEFAULT_ROWS
    opts = parse_options(spec.options)
    assert opts.group_by == ["Device", "Sensor"] and opts.key_columns == ["Device", "Sensor"]
    spec = tabular_spec("m", mini_batch_size="10mb", workers=3, error_threshold=5)
    assert (spec.kind, spec.mini_batch_size, spec.workers, spec.error_threshold) == \
        ("tabular", "10mb", 3, 5)
    assert spec.options == {"model": "m"}


@pytest.mark.parametrize(("options", "message"), [
    ({}, "a tabular job needs options.model"),
    ({"model": "m", "grup_by": ["a"]}, "unknown tabular option 'grup_by' (did you mean "
                                       "'group_by'?)"),
    ({"model": "models:/s-{Device}@production"},
     "options: model 'models:/s-{Device}@production' has placeholders ['Device']; they are "
     "filled with each group's values, so give group_by"),
    ({"model": "/m/{Device}-{Sensr}", "group_by": ["Device", "Sensor"]},
     "placeholder(s) ['Sensr'] are not group_by columns ['Device', 'Sensor']"),
    ({"model": "m", "keys": ["id"], "prediction": "id"},
     "prediction 'id' is the name of a key column"),
    ({"model": "m", "model_cache": 0}, "options.model_cache: Input should be greater than or "
                                       "equal to 1 (got 0)"),
    ({"model": "m", "output_format": "xlsx"}, "options.output_format: Input should be"),
    ({"model": "m", "group_by": ["a", "a"]}, "options.group_by: names column(s) ['a'] more "
                                             "than once"),
    ({"model": "m", "features": [1, 2]}, "options.features: must be a list of column names"),
    ({"model": " "}, "options.model: must not be empty"),
    ({"model": "/m/{}", "group_by": ["a"]}, "placeholders name group_by columns"),
])
def test_bad_options(options, message):
    with pytest.raises(SpecError) as exc:
        parse_options(options)
    assert message in str(exc.value)


def test_options_model_is_pydantic():
    opts = TabularOptions(model="m", keys=["k"])
    assert opts.key_columns == ["k"] and opts.prediction == "prediction"


def test_bad_rows_are_rejected_counted_and_reported(ws, tmp_path, data, model_dir):
    bad = data.astype({"Value": object, "Temp": object})
    bad.loc[3, "Value"] = "broken"  # not a number ("n/a" would read as missing)
    bad.loc[7, "Temp"] = None  # missing where the model needs a value
    bad.loc[40, "Value"] = "12,5"
    src = tmp_path / "in.csv"
    bad.to_csv(src, index=False)
    out = tmp_path / "out"
    spec = tabular_spec(str(model_dir), keys=["TS", "Device"], mini_batch_size=20)
    job = run_job(ws, spec, [str(src)], str(out))
    assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 57, 3)
    got = pd.concat(pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet")))
    kept = data.drop(index=[3, 7, 40])
    assert got["TS"].tolist() == kept["TS"].tolist()  # the rest of each mini-batch scored
    np.testing.assert_allclose(got["prediction"], expected(kept))
    errors = pd.read_csv(out / "_errors.csv")
    assert errors.to_dict("records") == [
        {"input": src.as_uri(), "row": 3, "keys": f"TS={data.TS[3]}, Device=1",
         "column": "Value", "problem": "value 'broken' is not a number"},
        {"input": src.as_uri(), "row": 7, "keys": f"TS={data.TS[7]}, Device=1",
         "column": "Temp", "problem": "missing value"},
        {"input": src.as_uri(), "row": 40, "keys": f"TS={data.TS[40]}, Device=1",
         "column": "Value", "problem": "value '12,5' is not a number"},
    ]
    logs = ws.system.local_path("jobs", job.id, "logs")
    assert (logs / "rejected_rows.csv").read_text() == (out / "_errors.csv").read_text()
    view = job_logs(ws, job.id)
    # in the order the workers finished them, which is theirs to choose
    failed = sorted((e for e in view.events if e["event"] == "items-failed"),
                    key=lambda e: e["minibatch"])
    assert [(e["minibatch"], e["items"]) for e in failed] == [(0, 2), (2, 1)]
    assert "2 of 20 row(s) of " in failed[0]["error"]
    assert "column Value: values that are not a number (1 row)" in failed[0]["error"]
    assert "column Temp: missing value (1 row)" in view.errors


def test_rejected_rows_beyond_error_threshold_fail_the_job(ws, tmp_path, data, model_dir):
    bad = data.astype({"Value": object})
    bad.loc[[1, 2, 3], "Value"] = "broken"
    src = tmp_path / "in.csv"
    bad.to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    job = run_job(ws, tabular_spec(str(model_dir), error_threshold=2), [str(src)], str(out))
    assert job.state == "failed" and job.items_failed == 3
    assert job.reason.startswith("3 item(s) failed, more than error_threshold=2; first error: "
                                 "3 of 60 row(s) of ")
    assert "column Value: values that are not a number (3 rows)" in job.reason
    assert not out.exists()


def test_missing_feature_column_at_plan_time_is_an_input_error(ws, tmp_path, data, model_dir):
    src = parquet(tmp_path / "in.parquet", data.drop(columns=["Temp"]))
    with pytest.raises(InputError) as exc:
        submit_job(ws, tabular_spec(str(model_dir), keys=["TS"]), [str(src)],
                   str(tmp_path / "out"))
    assert str(exc.value) == (
        f"input {src.as_uri()}: column(s) ['Temp'] not found (needed as group_by, keys or "
        "model features); its columns are ['TS', 'Device', 'Sensor', 'Value']")
    assert list_jobs(ws) == []  # nothing recorded


def test_missing_key_column_is_an_input_error(ws, tmp_path, data, model_dir):
    src = tmp_path / "in.csv"
    data.to_csv(src, index=False)
    with pytest.raises(InputError, match=r"column\(s\) \['id'\] not found"):
        submit_job(ws, tabular_spec(str(model_dir), keys=["id"]), [str(src)],
                   str(tmp_path / "o"))


@pytest.mark.parametrize(("model", "error", "message"), [
    ("missing-folder", ModelNotFoundError, "does not exist"),
    ("empty-folder", ModelNotFoundError, "holds no MLmodel, model.joblib or model.pkl"),
    ("models:/x@production", SpecError, "is in a model registry, but none is set"),
])
def test_model_that_does_not_resolve_is_refused_before_recording(ws, tmp_path, data, model,
                                                                  error, message):
    (tmp_path / "empty-folder").mkdir()
    ref = model if model.startswith("models:/") else str(tmp_path / model)
    src = parquet(tmp_path / "in.parquet", data)
    with pytest.raises(error, match=re.escape(message)):
        submit_job(ws, tabular_spec(ref), [str(src)], str(tmp_path / "out"))
    assert list_jobs(ws) == []


def test_outputs_that_exist_are_refused(ws, tmp_path, data, model_dir):
    src = parquet(tmp_path / "in.parquet", data)
    spec = tabular_spec(str(model_dir), keys=["TS"])
    assert run_job(ws, spec, [str(src)], str(tmp_path / "out")).state == "succeeded"
    other = tabular_spec(str(model_dir), keys=["TS", "Device"])
    with pytest.raises(OutputExistsError, match="already holds a finished output"):
        submit_job(ws, other, [str(src)], str(tmp_path / "out"))
    (tmp_path / "scores.csv").write_text("x\n")
    with pytest.raises(OutputExistsError, match=r"scores\.csv already exists"):
        submit_job(ws, other, [str(src)], str(tmp_path / "scores.csv"))
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(OutputExistsError, match="already holds part files"):
        submit_job(ws, other, [str(src)], str(stray))
    job = run_job(ws, other, [str(src)], str(tmp_path / "out"), overwrite=True)
    assert job.state == "succeeded"
    assert list(pd.read_parquet(tmp_path / "out").columns) == [
        "TS", "Device", "prediction", "batchscore_job_id"]


def test_rerun_with_overwrite_replaces_the_folder(ws, tmp_path, data, model_dir):
    src = parquet(tmp_path / "in.parquet", data)
    out = tmp_path / "out"
    run_job(ws, tabular_spec(str(model_dir), mini_batch_size=10), [str(src)], str(out))
    assert len(list(out.glob("part-*"))) == 6
    job = run_job(ws, tabular_spec(str(model_dir), mini_batch_size=30), [str(src)], str(out),
                  overwrite=True)
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet",
                                                          "part-00001.parquet"]
    assert set(pd.read_parquet(out)["batchscore_job_id"]) == {job.id}


@pytest.mark.parametrize(("inputs", "output", "options", "error", "message"), [
    (["in.parquet"], "out", {"query": "SELECT 1"}, SpecError,
     "options.query needs one database URL as input"),
    (["sqlite:///x.db"], "out", {}, SpecError, "is a database: give the SELECT to score as "
                                               "options.query"),
    (["sqlite:///x.db", "in.parquet"], "out", {"query": "SELECT 1"}, InputError,
     "a SQL input is one database URL"),
    (["in.parquet"], "sqlite:///o.db", {}, SpecError, "give the table to append to as "
                                                      "options.table"),
    (["in.parquet"], "out", {"table": "t"}, SpecError, "options.table ('t') needs a database "
                                                       "URL as output"),
    (["in.parquet"], "o.csv", {"output_format": "parquet"}, SpecError,
     "is a .csv file but options.output_format is 'parquet'"),
    (["in.txt"], "out", {}, InputError, "cannot tell its format from its name"),
    (["nothing-*.csv"], "out", {}, InputError, "matches no file"),
])
def test_bad_pointers(ws, tmp_path, data, model_dir, inputs, output, options, error, message):
    parquet(tmp_path / "in.parquet", data)
    (tmp_path / "in.txt").write_text("a\n")
    resolved = [i if "://" in i else str(tmp_path / i) for i in inputs]
    out = output if "://" in output else str(tmp_path / output)
    with pytest.raises(error, match=re.escape(message)):
        submit_job(ws, tabular_spec(str(model_dir), **options), resolved, out)
    assert list_jobs(ws) == []


def test_partition_keys_are_refused(ws, tmp_path, model_dir):
    spec = tabular_spec(str(model_dir)).model_copy(update={"partition_keys": ["Device"]})
    with pytest.raises(SpecError, match=r"groups rows with options\.group_by"):
        submit_job(ws, spec, [str(tmp_path)], str(tmp_path / "out"))


def test_model_returning_a_frame_keeps_its_columns(ws, tmp_path, data):
    import joblib

    folder = tmp_path / "two"
    folder.mkdir()
    joblib.dump(TwoColumns(), folder / "model.pkl")
    src = parquet(tmp_path / "in.parquet", data)
    job = run_job(ws, tabular_spec(str(folder), keys=["Device"]), [str(src)],
                  str(tmp_path / "o.parquet"))
    assert job.state == "succeeded"
    got = pd.read_parquet(tmp_path / "o.parquet")
    assert list(got.columns) == ["Device", "low", "prediction_Device", "batchscore_job_id"]
    assert got["low"].tolist() == (data["Value"] < 20).tolist()
    assert got["prediction_Device"].tolist() == [0] * 60  # renamed: a key column has the name


_RUN_AND_EXIT = """
import sys
from batchscore import init_workspace
from batchscore.jobs import run_job
from batchscore.state.jobs import list_attempts
from batchscore.tabular import tabular_spec

ws = init_workspace(sys.argv[1])
job = run_job(ws, tabular_spec(sys.argv[2], keys=["TS"], mini_batch_size=10, workers=2),
              [sys.argv[3]], sys.argv[4])
assert job.state == "succeeded", job.reason
print(" ".join(sorted({a["worker"].rsplit(":", 1)[1] for a in list_attempts(ws.engine, job.id)})))
"""


def test_workers_stop_after_the_commit_and_before_the_process_exits(tmp_path, data, model_dir):
    """A tabular job returns once committed and its workers are stopped after that (the job
    does not wait for them); the process still waits for them before it exits, so none is
    left behind: every worker that ran a mini-batch is gone when the process has ended."""
    src = parquet(tmp_path / "in.parquet", data)
    done = subprocess.run(
        [sys.executable, "-c", _RUN_AND_EXIT, str(tmp_path / "ws"), str(model_dir), str(src),
         str(tmp_path / "out")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert pids and os.getpid() not in pids
    assert [p for p in pids if pid_alive(p)] == []  # reaped by the process before it exited
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_a_tabular_job_stops_its_workers_after_it_returns(ws, tmp_path, data, model_dir):
    """In a process that goes on (the service), the workers of a finished job end by
    themselves: the pool is stopped by a thread, not left running."""
    from batchscore.state.jobs import list_attempts

    src = parquet(tmp_path / "in.parquet", data)
    job = run_job(ws, tabular_spec(str(model_dir), keys=["TS"], mini_batch_size=10, workers=2),
                  [str(src)], str(tmp_path / "out"))
    assert job.state == "succeeded"
    assert (tmp_path / "out" / "_SUCCESS").exists()  # committed when run_job returns
    pids = {int(a["worker"].rsplit(":", 1)[1]) for a in list_attempts(ws.engine, job.id)}
    assert pids
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=60)
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t.name == "batchscore-pool-close"], timeout=60)


def test_ctrl_c_during_the_commit_stops_the_workers_and_leaves_the_job_resumable(
        ws, tmp_path, data, model_dir, monkeypatch):
    """The workers of a tabular job are still up while it commits: an interrupt there stops
    them before it propagates, publishes nothing, and the job resumes to the same output."""
    from batchscore.jobs import get_job, resume_job
    from batchscore.state.jobs import list_attempts
    from batchscore.tabular.job import TabularKind

    src = parquet(tmp_path / "in.parquet", data)
    out = tmp_path / "out"
    real_commit = TabularKind.commit

    def interrupted(self, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(TabularKind, "commit", interrupted)
    spec = tabular_spec(str(model_dir), keys=["TS"], mini_batch_size=10, workers=2)
    with pytest.raises(KeyboardInterrupt):
        run_job(ws, spec, [str(src)], str(out))
    job = list_jobs(ws)[0]
    pids = {int(a["worker"].rsplit(":", 1)[1]) for a in list_attempts(ws.engine, job.id)}
    assert pids and [p for p in pids if pid_alive(p)] == []  # stopped before it propagated
    assert get_job(ws, job.id).interrupted and not (out / "_SUCCESS").exists()
    monkeypatch.setattr(TabularKind, "commit", real_commit)
    resumed = resume_job(ws, job.id)
    assert resumed.state == "succeeded" and (out / "_SUCCESS").exists()
    whole = pd.concat(pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet")))
    assert whole["TS"].tolist() == data["TS"].tolist()
    np.testing.assert_allclose(whole["prediction"], expected(data))
