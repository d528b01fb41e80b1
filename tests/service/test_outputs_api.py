"""GET /api/v1/jobs/{id}/output/rows against real tabular jobs: a folder of Parquet parts, a
CSV file and SQL tables (SQLite, PostgreSQL), paging, column choice, JSON-safe values, and
every refusal (unknown job, not tabular, not finished, failed, bad limits, vanished output)."""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from batchscore.jobs import run_job, spec_from_mapping, submit_job
from batchscore.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "sensors" / "sensor_data.csv"
KEYS = ["TS", "Device", "Sensor", "Value", "Quality"]
OUT_COLUMNS = [*KEYS, "prediction", "batchscore_job_id"]


def load_train():
    """examples/sensors/train.py as a module."""
    if "sensors_train" not in sys.modules:
        spec = importlib.util.spec_from_file_location("sensors_train",
                                                      ROOT / "examples/sensors/train.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["sensors_train"]


def sensor_input(folder: Path, per_group: int = 40) -> tuple[Path, pd.DataFrame]:
    """Real readings of Devices 1-2, Sensors 1 and 4 (``per_group`` each, 4 groups) as Parquet,
    with TS as a timestamp and a Quality column that is NaN on every 7th row."""
    if not DATA.is_file():
        pytest.skip(f"{DATA} is not here")
    frame = pd.read_csv(DATA)
    frame = frame[frame.Device.isin([1, 2]) & frame.Sensor.isin([1, 4])]
    frame = frame.groupby(["Device", "Sensor"]).head(per_group).reset_index(drop=True)
    frame["TS"] = pd.to_datetime(frame["TS"]).astype("datetime64[ms]")
    frame["Quality"] = [math.nan if i % 7 == 0 else 0.5 + i / 1000 for i in range(len(frame))]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "readings.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def sensor_models(folder: Path, frame: pd.DataFrame) -> dict[tuple[int, int], object]:
    """One StandardScaler + OneClassSVM per group, in hive layout (model.joblib) under
    ``folder``, trained by the example's own code; returns them by (Device, Sensor)."""
    train = load_train()
    models = train.train_models(frame[["TS", "Device", "Sensor", "Value"]], nu=0.05)
    train.write_folder(models, folder, "joblib")
    return {(m.device, m.sensor): m.model for m in models}


def expected_predictions(frame: pd.DataFrame, models: dict) -> pd.Series:
    out = pd.Series(0, index=frame.index, dtype="int64")
    for (device, sensor), rows in frame.groupby(["Device", "Sensor"]):
        out[rows.index] = models[(int(device), int(sensor))].predict(rows[["Value"]])
    return out


def sensor_spec(models_dir: Path, **options):
    from batchscore.tabular.job import tabular_spec

    return tabular_spec(str(models_dir), group_by=["Device", "Sensor"], keys=KEYS,
                        features=["Value"], mini_batch_size=50, workers=1, name="sensor-anomaly",
                        **options)


@pytest.fixture
def scored(ws: Workspace, tmp_path: Path):
    """A succeeded tabular job writing a folder of Parquet parts; (job, input frame, models)."""
    data, frame = sensor_input(tmp_path / "in")
    models = sensor_models(tmp_path / "models", frame)
    job = run_job(ws, sensor_spec(tmp_path / "models"), [str(data)], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    return job, frame, models


@pytest.fixture
def client(client_for):
    return client_for(background=False, auth="off")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["TS", "Device", "Sensor"]).reset_index(drop=True)


def test_parquet_parts_read_in_pages(scored, client, tmp_path):
    job, frame, models = scored
    parts = sorted(p.name for p in (tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 4  # 160 rows in mini-batches of 50: pages cross part files

    response = client.get(f"/api/v1/jobs/{job.id}/output/rows", params={"limit": 1000})
    assert response.status_code == 200, response.text
    whole = response.json()
    assert whole["columns"] == OUT_COLUMNS
    assert whole["total"] == 160 and whole["offset"] == 0 and whole["truncated"] is False
    assert len(whole["rows"]) == 160

    got = pd.DataFrame(whole["rows"], columns=whole["columns"])
    assert set(got["batchscore_job_id"]) == {job.id}
    # timestamps come back as ISO 8601 strings, NaN as null
    assert got["TS"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()
    assert got["Quality"].isna().sum() == frame["Quality"].isna().sum() > 0
    assert all(row[KEYS.index("Quality")] is None or isinstance(row[KEYS.index("Quality")], float)
               for row in whole["rows"])
    got["TS"] = pd.to_datetime(got["TS"]).astype("datetime64[ms]")
    want = frame.assign(prediction=expected_predictions(frame, models))
    got_sorted, want_sorted = _sorted(got), _sorted(want)
    assert got_sorted["Value"].tolist() == want_sorted["Value"].tolist()
    assert got_sorted["prediction"].tolist() == want_sorted["prediction"].tolist()
    assert (want["prediction"] == -1).sum() > 0  # the data has anomalies to show

    pages, offset = [], 0
    while True:
        page = client.get(f"/api/v1/jobs/{job.id}/output/rows",
                          params={"limit": 30, "offset": offset}).json()
        assert page["offset"] == offset and page["total"] == 160
        pages += page["rows"]
        offset += len(page["rows"])
        if not page["truncated"]:
            break
        assert len(page["rows"]) == 30
    assert pages == whole["rows"]
    past = client.get(f"/api/v1/jobs/{job.id}/output/rows", params={"offset": 500}).json()
    assert past["rows"] == [] and past["total"] == 160 and past["truncated"] is False


def test_columns_are_chosen_in_the_order_asked(scored, client):
    job, _, _ = scored
    page = client.get(f"/api/v1/jobs/{job.id[:8]}/output/rows",
                      params={"columns": "prediction,Value", "limit": 5, "offset": 2}).json()
    assert page["columns"] == ["prediction", "Value"]
    assert len(page["rows"]) == 5 and page["truncated"] is True
    assert all(p in (-1, 1) and isinstance(v, float) for p, v in page["rows"])


def test_csv_file_and_sqlite_table_outputs(ws, tmp_path, client):
    data, frame = sensor_input(tmp_path / "in", per_group=15)
    models = sensor_models(tmp_path / "models", frame)
    want = _sorted(frame.assign(prediction=expected_predictions(frame, models)))

    csv_job = run_job(ws, sensor_spec(tmp_path / "models"), [str(data)],
                      str(tmp_path / "scored.csv"))
    assert csv_job.state == "succeeded", csv_job.reason
    page = client.get(f"/api/v1/jobs/{csv_job.id}/output/rows",
                      params={"columns": "Device,Sensor,Value,prediction"}).json()
    assert page["total"] == 60 and len(page["rows"]) == 60
    got = pd.DataFrame(page["rows"], columns=page["columns"])
    assert sorted(map(tuple, got.values.tolist())) == sorted(
        map(tuple, want[["Device", "Sensor", "Value", "prediction"]].values.tolist()))

    # two jobs append to one table; each sees only its own rows
    db = f"sqlite:///{tmp_path / 'scores.db'}"
    first_half = frame[frame.Device == 1]
    first_half.to_parquet(tmp_path / "in" / "dev1.parquet", index=False)
    jobs = [run_job(ws, sensor_spec(tmp_path / "models", table="scores"), [str(path)], db)
            for path in (tmp_path / "in" / "dev1.parquet", data)]
    assert all(j.state == "succeeded" for j in jobs), [j.reason for j in jobs]
    small = client.get(f"/api/v1/jobs/{jobs[0].id}/output/rows").json()
    assert small["total"] == 30 and {r[-1] for r in small["rows"]} == {jobs[0].id}
    assert {r[1] for r in small["rows"]} == {1}
    pages = [client.get(f"/api/v1/jobs/{jobs[1].id}/output/rows",
                        params={"limit": 25, "offset": o}).json() for o in (0, 25, 50)]
    assert [p["truncated"] for p in pages] == [True, True, False]
    rows = [r for p in pages for r in p["rows"]]
    assert len(rows) == 60 and len({tuple(r) for r in rows}) == 60  # stable, no repeats
    got = pd.DataFrame(rows, columns=pages[0]["columns"])
    assert sorted(got["prediction"].tolist()) == sorted(want["prediction"].tolist())

    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE scores"))
    engine.dispose()
    gone = client.get(f"/api/v1/jobs/{jobs[0].id}/output/rows")
    assert gone.status_code == 404 and "table 'scores' does not exist" in gone.json()["detail"]


@pytest.mark.postgres
def test_postgresql_table_output(ws, tmp_path, client, postgres_url):
    data, frame = sensor_input(tmp_path / "in", per_group=10)
    sensor_models(tmp_path / "models", frame)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    table = f"scores_{tmp_path.name[-6:].replace('-', '_').lower()}"
    job = run_job(ws, sensor_spec(tmp_path / "models", table=table), [str(data)], url)
    assert job.state == "succeeded", job.reason
    page = client.get(f"/api/v1/jobs/{job.id}/output/rows",
                      params={"columns": "TS,Value,prediction", "limit": 15}).json()
    assert page["total"] == 40 and len(page["rows"]) == 15 and page["truncated"] is True
    assert all(isinstance(ts, str) and "T" in ts for ts, _, _ in page["rows"])


def test_refusals(ws, scored, client, script, files, tmp_path):
    job, _, _ = scored
    rows = f"/api/v1/jobs/{job.id}/output/rows"

    def detail(response, status):
        assert response.status_code == status, response.text
        return response.json()["detail"]

    assert "no job with id" in detail(client.get("/api/v1/jobs/nosuchjob/output/rows"), 404)
    assert "between 1 and 50000" in detail(client.get(rows, params={"limit": 50_001}), 400)
    assert "between 1 and 50000" in detail(client.get(rows, params={"limit": 0}), 400)
    assert "offset must be 0 or more" in detail(client.get(rows, params={"offset": -1}), 400)
    unknown = detail(client.get(rows, params={"columns": "Value,Humidity"}), 400)
    assert "no column(s) Humidity" in unknown and "prediction" in unknown
    assert "no empty names" in detail(client.get(rows, params={"columns": "Value,"}), 400)

    # a script job has no rows
    spec = spec_from_mapping({"scoring_script": str(script("def run(mb):\n    return mb\n"))})
    other = run_job(ws, spec, [str(files(2))], str(tmp_path / "script-out"))
    assert other.state == "succeeded"
    assert "is a script job" in detail(client.get(f"/api/v1/jobs/{other.id}/output/rows"), 400)

    # a queued job (submitted, not run) is not finished
    queued, _ = submit_job(ws, sensor_spec(tmp_path / "models"),
                           [str(tmp_path / "in" / "readings.parquet")], str(tmp_path / "later"))
    message = detail(client.get(f"/api/v1/jobs/{queued.id}/output/rows"), 409)
    assert f"job {queued.id} is queued" in message

    # a failed job: one group has no model and no failure is allowed
    shutil.rmtree(tmp_path / "models" / "Device=2" / "Sensor=4")
    failed = run_job(ws, sensor_spec(tmp_path / "models", error_threshold=0),
                     [str(tmp_path / "in" / "readings.parquet")], str(tmp_path / "failed-out"))
    assert failed.state == "failed"
    message = detail(client.get(f"/api/v1/jobs/{failed.id}/output/rows"), 409)
    assert f"job {failed.id} is failed" in message

    # the output is damaged, emptied, gone
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    parts[1].write_bytes(b"not parquet")
    assert f"cannot be read: {parts[1]}" in detail(client.get(rows), 404)
    for part in parts:
        part.unlink()
    assert "holds no Parquet or CSV part files" in detail(client.get(rows), 404)
    shutil.rmtree(tmp_path / "out")
    assert "is gone" in detail(client.get(rows), 404)


def test_a_job_that_scored_no_rows_has_an_empty_page(ws, tmp_path, client):
    """No group has a model: every row is rejected, the job succeeds (threshold -1), and
    its header-only CSV gives the columns and no rows."""
    data, frame = sensor_input(tmp_path / "in", per_group=5)
    sensor_models(tmp_path / "models", frame.assign(Device=9))
    job = run_job(ws, sensor_spec(tmp_path / "models"), [str(data)], str(tmp_path / "o.csv"))
    assert job.state == "succeeded" and job.items_failed == 20
    page = client.get(f"/api/v1/jobs/{job.id}/output/rows").json()
    assert page == {"job_id": job.id, "columns": OUT_COLUMNS, "rows": [], "total": 0,
                    "offset": 0, "truncated": False}
    assert client.get(f"/api/v1/jobs/{job.id}/output/rows",
                      params={"columns": "Humidity"}).status_code == 400


def test_roles(ws, scored, client_for, tokens):
    job, _, _ = scored
    remote = client_for(background=False, auth="always")
    rows = f"/api/v1/jobs/{job.id}/output/rows"
    assert remote.get(rows).status_code == 401
    page = remote.get(rows, params={"limit": 3}, headers=tokens["viewer"])
    assert page.status_code == 200 and len(page.json()["rows"]) == 3


def test_values_are_json_safe(ws, tmp_path):
    """Infinities and NaN in any column become null; the rows are plain JSON."""
    import json

    from batchscore.service.output_rows import read_output_rows

    data, frame = sensor_input(tmp_path / "in", per_group=5)
    frame.loc[frame.index[:3], "Quality"] = [np.inf, -np.inf, np.nan]
    frame.to_parquet(data, index=False)
    sensor_models(tmp_path / "models", frame)
    job = run_job(ws, sensor_spec(tmp_path / "models"), [str(data)], str(tmp_path / "out"))
    page = read_output_rows(ws, job.id, columns=["Quality"])
    assert json.loads(json.dumps(page.to_dict(), allow_nan=False)) == page.to_dict()
    assert sum(r[0] is None for r in page.rows) == int(frame["Quality"].isna().sum()) + 2
