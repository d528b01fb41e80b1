"""Outputs: what an output URL means, folders of parts with _SUCCESS last, unified schemas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from batchscore.errors import SpecError
from batchscore.jobs import list_jobs, run_job
from batchscore.storage import Store
from batchscore.tabular import tabular_spec
from batchscore.tabular.writers import JOB_COLUMN, OutputTarget, output_target, write_part


@pytest.mark.parametrize(("url", "fmt", "table", "target"), [
    ("file:///o", None, None, OutputTarget("file:///o", "folder", "parquet")),
    ("file:///o", "csv", None, OutputTarget("file:///o", "folder", "csv")),
    ("s3://b/x.CSV", None, None, OutputTarget("s3://b/x.CSV", "file", "csv")),
    ("file:///x.parquet", "parquet", None, OutputTarget("file:///x.parquet", "file", "parquet")),
    ("sqlite:///o.db", None, "t", OutputTarget("sqlite:///o.db", "sql", "sql", "t")),
    ("postgresql://u@h/db", "sql", "s.t", OutputTarget("postgresql://u@h/db", "sql", "sql",
                                                       "s.t")),
])
def test_output_targets(url, fmt, table, target):
    assert output_target(url, fmt, table) == target


@pytest.mark.parametrize(("url", "fmt", "table", "message"), [
    ("postgresql://u:pw@h/db", None, None, "output postgresql://u:***@h/db is a database: "
                                           "give the table to append to as options.table"),
    ("sqlite:///o.db", "csv", "t", "options.output_format 'csv' is for files"),
    ("file:///o", "sql", None, "options.output_format sql needs a database URL"),
    ("file:///o.parquet", "csv", None, "is a .parquet file but options.output_format is"),
])
def test_bad_output_targets(url, fmt, table, message):
    with pytest.raises(SpecError) as exc:
        output_target(url, fmt, table)
    assert message in str(exc.value) and "pw" not in str(exc.value)


def test_folder_of_csv_parts(ws, tmp_path, data, model_dir):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    out = tmp_path / "out"
    job = run_job(ws, tabular_spec(str(model_dir), keys=["TS"], output_format="csv",
                                   mini_batch_size=40), [str(src)], str(out))
    assert job.state == "succeeded"
    assert sorted(p.name for p in out.iterdir()) == [
        ".batchscore-job.json", "_SUCCESS", "part-00000.csv", "part-00001.csv"]
    got = pd.concat(pd.read_csv(out / f"part-0000{i}.csv") for i in range(2))
    assert got["TS"].tolist() == data["TS"].tolist()


def test_mini_batches_of_different_types_are_unified(ws, tmp_path, data, model_dir):
    gaps = data.astype({"Sensor": "float64"})
    gaps.loc[45, "Sensor"] = None  # only the last mini-batch reads Sensor as float
    src = tmp_path / "in.csv"
    gaps.to_csv(src, index=False)
    out = tmp_path / "out"
    run_job(ws, tabular_spec(str(model_dir), keys=["Sensor"], mini_batch_size=20), [str(src)],
            str(out))
    types = {str(pq.read_schema(p).field("Sensor").type) for p in out.glob("part-*.parquet")}
    assert types == {"double"}  # parts that had integers were rewritten to the common type
    one = tmp_path / "one.parquet"
    run_job(ws, tabular_spec(str(model_dir), keys=["Sensor"], mini_batch_size=20), [str(src)],
            str(one))
    got = pd.read_parquet(one)
    assert len(got) == 60 and got["Sensor"].isna().sum() == 1


def test_no_rows_at_all_still_gives_a_complete_output(ws, tmp_path, data, model_dir):
    bad = data.astype({"Value": object})
    bad["Value"] = "?"
    src = tmp_path / "in.csv"
    bad.to_csv(src, index=False)
    out = tmp_path / "out"
    job = run_job(ws, tabular_spec(str(model_dir), keys=["TS"]), [str(src)], str(out))
    assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 0, 60)
    assert (out / "_SUCCESS").exists() and len(pd.read_csv(out / "_errors.csv")) == 60
    assert len(pd.read_parquet(out / "part-00000.parquet")) == 0


def test_crash_before_success_marker_then_resume_completes_the_folder(ws, tmp_path, data,
                                                                      model_dir):
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    out = tmp_path / "out"
    spec_file = tmp_path / "job.yml"
    spec_file.write_text(yaml.safe_dump({
        "kind": "tabular", "mini_batch_size": 20, "max_concurrency_per_instance": 1,
        "options": {"model": str(model_dir), "keys": ["TS"]}}))
    args = [sys.executable, "-m", "batchscore", "job", "run", str(spec_file), "-i", str(src),
            "-o", str(out), "--no-progress"]
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    crashed = subprocess.run(args, env={**env, "BATCHSCORE_CRASH_AT": "tabular-parts-written"},
                             capture_output=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert not (out / "_SUCCESS").exists()  # readers know it is not complete
    again = subprocess.run(args, env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (out / "_SUCCESS").exists() and len(list(out.glob("part-*.parquet"))) == 3
    assert pd.read_parquet(out)["TS"].tolist() == data["TS"].tolist()
    assert [j.state for j in list_jobs(ws)] == ["succeeded"]


@pytest.mark.parametrize("nested", [False, True])
def test_parts_keep_statistics_except_for_the_job_id(tmp_path, nested):
    """The job id column (one value in every row) is written without min/max statistics,
    which cost a comparison per row; every other column keeps them. With a nested column
    (statistics are named by leaf paths) every column keeps them, the job id too."""
    store = Store(tmp_path.as_uri(), "system")
    frame = pd.DataFrame({"id": [3, 1, 2], "prediction": [0.5, 0.25, 0.75]})
    if nested:
        frame["scores"] = [[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]]
    write_part(store, "parts/p.parquet", frame, "job-1")
    meta = pq.ParquetFile(tmp_path / "parts" / "p.parquet").metadata.row_group(0)
    stats = {meta.column(i).path_in_schema: meta.column(i).statistics
             for i in range(meta.num_columns)}
    assert (stats["id"].min, stats["id"].max) == (1, 3)
    assert (stats["prediction"].min, stats["prediction"].max) == (0.25, 0.75)
    if nested:
        assert stats["scores.list.element"].has_min_max
        assert stats[JOB_COLUMN].has_min_max
    else:
        assert stats[JOB_COLUMN] is None or not stats[JOB_COLUMN].has_min_max
    assert pq.read_table(tmp_path / "parts" / "p.parquet").column(JOB_COLUMN).to_pylist() \
        == ["job-1"] * 3
