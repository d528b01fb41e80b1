"""Group values are data: a ``{Column}`` placeholder of a model template never lets a row name
a model outside the template's folder, and a model is loaded only from where an admin put it.

The attack: an admin's endpoint scores ``<models>/dev-{Device}``; an operator uploads a pickle
to the data store and a CSV whose ``Device`` is ``1/../../<path to that pickle's folder>``.
Before the fix the worker unpickled the operator's file (here: it creates a marker file)."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from batchscore.endpoints import create_endpoint, invoke_endpoint, tabular_endpoint_spec
from batchscore.errors import SpecError
from batchscore.jobs import get_job, run_job
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.tabular import tabular_spec
from batchscore.tabular.models import (
    ModelLoader,
    ModelNotFoundError,
    group_ref,
    group_value_problem,
)
from batchscore.workspace import Workspace
from service.svc_helpers import TestClient, wait_for


class _Marker:
    """Unpickling it creates a file: proof that the operator's pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.mkdir, (self.path,))


def _models(root: Path) -> Path:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=40)})
    for device in (1, 2):
        folder = root / f"dev-{device}"
        folder.mkdir(parents=True)
        joblib.dump(LinearRegression().fit(x, device * x["a"]), folder / "model.joblib")
    return root


def _evil_pickle(folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "model.pkl", "wb") as fh:
        pickle.dump(_Marker(str(marker)), fh)
    return folder


def _climb(template_dir: Path, target: Path) -> str:
    """``1/../../...``: the Device value that makes ``dev-{Device}`` name ``target``."""
    rel = os.path.relpath(target, template_dir / "dev-1")
    return f"1/{rel}"


def test_the_attack_through_the_service_api(ws: Workspace, tmp_path: Path) -> None:
    models = _models(tmp_path / "models")
    marker = tmp_path / "PWNED"
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'a', 'admin')[1]}"}
    operator = {"Authorization": f"Bearer {create_token(ws.engine, 'o', 'operator')[1]}"}
    with TestClient(create_app(ws, ServiceConfig(run_slots=1))) as client:
        made = client.post("/api/v1/endpoints", headers=admin, json={
            "name": "dev", "model": f"{models}/dev-{{Device}}", "group_by": ["Device"],
            "keys": ["id"], "features": ["a"]})
        assert made.status_code == 201, made.text
        payload = pickle.dumps(_Marker(str(marker)))
        put = client.put("/api/v1/data/uploads/evil/model.pkl", headers=operator,
                         content=payload)
        assert put.status_code == 201, put.text
        evil = ws.data.local_path("uploads", "evil")
        device = _climb(models, evil)
        csv = pd.DataFrame({"id": [0, 1, 2, 3], "Device": ["1", device, "2", device],
                            "a": [1.0, 2.0, 3.0, 4.0]}).to_csv(index=False).encode()
        put = client.put("/api/v1/data/incoming/rows.csv", headers=operator, content=csv)
        assert put.status_code == 201, put.text
        answer = client.post("/api/v1/endpoints/dev/invoke", headers=operator, json={
            "inputs": ["incoming/rows.csv"], "output": "scored/dev/"})
        assert answer.status_code == 202, answer.text
        job = wait_for(lambda: (j := get_job(ws, answer.json()["job_id"])).finished and j,
                       timeout=120)
    assert not marker.exists(), "the operator's pickle was loaded"
    assert job.state == "succeeded", job.reason
    scored = pd.read_parquet(ws.data.local_path("scored", "dev", "part-00000.parquet"))
    assert sorted(scored["id"]) == [0, 2]
    rejected = ws.system.read_text(f"jobs/{job.id}/logs/rejected_rows.csv")
    assert "not a plain name" in rejected and rejected.count("Device") >= 2


def test_the_attack_through_the_python_functions(ws: Workspace, tmp_path: Path) -> None:
    models = _models(tmp_path / "models")
    marker = tmp_path / "PWNED"
    evil = _evil_pickle(tmp_path / "uploads" / "evil", marker)
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"id": [0, 1, 2], "Device": ["1", _climb(models, evil), "2"],
                  "a": [1.0, 2.0, 3.0]}).to_csv(rows, index=False)
    spec = tabular_spec(f"{models}/dev-{{Device}}", group_by=["Device"], keys=["id"],
                        features=["a"], workers=1)
    job = run_job(ws, spec, [str(rows)], str(tmp_path / "out"))
    assert not marker.exists(), "the operator's pickle was loaded"
    assert job.state == "succeeded", job.reason
    assert sorted(pd.read_parquet(tmp_path / "out")["id"]) == [0, 2]


@pytest.mark.parametrize("value", [
    "1/../../x", "../x", "..", ".", "", "a/b", "a\\b", "/etc", "x\x00y", "x\ny", "x\x7f",
    " ", "\t",
])
def test_values_that_are_not_plain_names_are_refused(value: str) -> None:
    assert group_value_problem(value) is not None
    with pytest.raises(ModelNotFoundError, match="not a plain name"):
        group_ref("/models/dev-{Device}", {"Device": value})


@pytest.mark.parametrize("value", ["1", 7, 2.0, "sensor-α", "a b", "a..b", "x.y"])
def test_plain_values_fill_the_template(value: object) -> None:
    assert group_value_problem(value) is None
    assert group_ref("/models/dev-{Device}", {"Device": value}).startswith("/models/dev-")


def test_a_symlink_out_of_the_template_root_is_not_followed(tmp_path: Path) -> None:
    models = _models(tmp_path / "models")
    marker = tmp_path / "PWNED"
    evil = _evil_pickle(tmp_path / "uploads" / "evil", marker)
    (models / "dev-3").symlink_to(evil, target_is_directory=True)
    loader = ModelLoader(None, tmp_path / "scratch", roots=[str(models)])
    with pytest.raises(ModelNotFoundError, match="outside"):
        loader.load(str(models / "dev-3"))
    assert not marker.exists()
    assert loader.load(str(models / "dev-1")).predict is not None


def test_a_model_file_linked_out_of_the_template_root_is_not_loaded(tmp_path: Path) -> None:
    models = _models(tmp_path / "models")
    marker = tmp_path / "PWNED"
    evil = _evil_pickle(tmp_path / "uploads" / "evil", marker)
    (models / "dev-4").mkdir()
    (models / "dev-4" / "model.pkl").symlink_to(evil / "model.pkl")
    loader = ModelLoader(None, tmp_path / "scratch", roots=[str(models)])
    with pytest.raises(ModelNotFoundError, match="outside"):
        loader.load(str(models / "dev-4"))
    assert not marker.exists()


def test_an_endpoint_model_in_the_data_store_is_refused(ws: Workspace) -> None:
    folder = ws.data.local_path("models", "m")
    folder.mkdir(parents=True)
    joblib.dump(LinearRegression().fit(pd.DataFrame({"a": [0.0, 1.0]}), [0.0, 1.0]),
                folder / "model.joblib")
    for model in (str(folder), f"{folder.parent}/{{Device}}"):
        group_by = ["Device"] if "{" in model else []
        spec = tabular_endpoint_spec("m", model, group_by=group_by)
        with pytest.raises(SpecError, match="data store"):
            create_endpoint(ws, "m", spec)


def test_a_template_without_a_fixed_folder_is_refused(ws: Workspace) -> None:
    with pytest.raises(SpecError, match="placeholder"):
        tabular_spec("{Device}", group_by=["Device"])
    with pytest.raises(SpecError, match="placeholder"):
        tabular_spec("/{Device}/model", group_by=["Device"])


def test_invoking_an_endpoint_whose_model_moved_into_the_data_store_is_refused(
        ws: Workspace, tmp_path: Path) -> None:
    """The data store's setting may change after the endpoint was made: checked again."""
    models = _models(tmp_path / "models")
    spec = tabular_endpoint_spec("dev", f"{models}/dev-{{Device}}", group_by=["Device"])
    create_endpoint(ws, "dev", spec)
    moved = Workspace(replace(ws.settings, data_store=f"file://{tmp_path}"), ws.engine)
    with pytest.raises(SpecError, match="data store"):
        invoke_endpoint(moved, "dev", [str(tmp_path / "x.csv")], str(tmp_path / "o"),
                        start=False)
