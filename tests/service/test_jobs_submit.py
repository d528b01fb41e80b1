"""``POST /api/v1/jobs``: entry-script jobs submitted to the service, their scripts kept in the
system store, their paths checked, and job views that show data-store paths only."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchscore.jobs import bundle as bundles
from batchscore.jobs import list_jobs, run_job, spec_from_mapping
from batchscore.jobs.bundle import pack_bundle
from batchscore.pipelines import list_runs
from batchscore.service import create_token
from batchscore.service import guard as service_guard
from batchscore.workspace import Workspace
from service.svc_helpers import wait_for

SCORE = """\
import os

def init():
    global WEIGHT
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weight.txt")) as fh:
        WEIGHT = int(fh.read())

def run(mini_batch):
    return [f"{os.path.basename(p)} {int(open(p).read()) * WEIGHT}" for p in mini_batch]
"""


def make_script(tmp_path: Path, source: str = SCORE) -> tuple[Path, Path]:
    """A scoring script (in its own code folder) and a model folder named ``model``."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "score.py").write_text(textwrap.dedent(source))
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "weight.txt").write_text("10")
    return code / "score.py", model


def put_inputs(ws: Workspace, n: int = 3, folder: str = "incoming/batch") -> str:
    for i in range(n):
        ws.data.write_text(f"{folder}/f{i}.txt", f"{i + 1}\n")
    return folder


def body_for(tmp_path: Path, inputs: list[str], output: str, source: str = SCORE,
             **settings: Any) -> dict[str, Any]:
    """The request the CLI sends: settings without local paths, the bundle, data paths."""
    script, model = make_script(tmp_path, source)
    spec = spec_from_mapping({"scoring_script": str(script), "model_dir": str(model),
                              "mini_batch_size": 2, **settings})
    packed = pack_bundle(spec)
    return {"spec": spec.model_dump(mode="json",
                                    exclude={"code", "scoring_script", "model_dir"}),
            "scoring_script": packed.scoring_script,
            "bundle": base64.b64encode(packed.archive).decode(), "inputs": inputs,
            "output": output}


def tar_of(members: dict[str, bytes | None], links: dict[str, str] | None = None) -> str:
    """A hand-made bundle (base64): files, and symbolic links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data or b""))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return base64.b64encode(buffer.getvalue()).decode()


def nothing_recorded(ws: Workspace) -> None:
    assert list_jobs(ws) == [] and list_runs(ws.engine) == []
    assert ws.system.list("scripts") == []
    assert not ws.data.exists("scored")


def no_service_folders(ws: Workspace, payload: Any, urls: bool = True) -> None:
    """Neither the workspace's folders nor (with ``urls``) any file:// URL show."""
    text = json.dumps(payload)
    assert str(ws.settings.root) not in text, text
    assert not urls or "file://" not in text, text


def test_admin_submits_a_script_job_over_http(ws, service, tmp_path):
    folder = put_inputs(ws)
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'ci', 'admin')[1]}"}
    body = body_for(tmp_path, [folder], "scored")
    r = httpx.post(f"{service}/api/v1/jobs", json=body, headers=admin, timeout=60)
    assert r.status_code == 202, r.text
    sub = r.json()
    job_id, run_id = sub["job_id"], sub["run_id"]
    assert sub["created"] is True and sub["script"].startswith("system:scripts/")

    def finished() -> Any:
        job = httpx.get(f"{service}/api/v1/jobs/{job_id}", headers=admin).json()
        return job if job["state"] in ("succeeded", "failed", "canceled") else None

    job = wait_for(finished, timeout=120)
    assert job["state"] == "succeeded", job
    # the output is in the data store, scored with the model that travelled with the script
    assert ws.data.read_text("scored/predictions.csv").splitlines() == [
        "f0.txt 10", "f1.txt 20", "f2.txt 30"]
    # the script lives in the system store only, under its digest
    digest = sub["script"].removeprefix("system:scripts/")
    assert ws.system.exists(f"scripts/{digest}", "code/score.py")
    assert ws.system.exists(f"scripts/{digest}", "model/model/weight.txt")
    assert not any(p.startswith("scripts") for p in ws.data.list())

    # every view shows data-store paths and system: paths, never the service's folders
    assert job["inputs"] == [f"{folder}/f{i}.txt" for i in range(3)]
    assert job["output_url"] == "scored"
    assert job["spec"]["code"] == f"system:scripts/{digest}/code"
    assert job["spec"]["model_dir"] == f"system:scripts/{digest}/model/model"
    views = [job]
    for path in ("/jobs", f"/jobs/{job_id}/minibatches", f"/jobs/{job_id}/logs",
                 f"/runs/{run_id}", "/runs"):
        answer = httpx.get(f"{service}/api/v1{path}", headers=admin)
        assert answer.status_code == 200, answer.text
        views.append(answer.json())
    no_service_folders(ws, views[:4])
    run = views[4]
    assert run["pipeline"] == "batch-job" and run["state"] == "succeeded"
    assert run["job"]["output_url"] == "scored"
    mbs = views[2]
    assert [mb["items"] for mb in mbs] == [[f"{folder}/f0.txt", f"{folder}/f1.txt"],
                                          [f"{folder}/f2.txt"]]

    # the same submission again: the job is finished, its output is not overwritten
    again = httpx.post(f"{service}/api/v1/jobs", json=body, headers=admin, timeout=60)
    assert again.status_code == 409, again.text
    assert "scored already holds a finished output" in again.json()["detail"]
    no_service_folders(ws, again.json())


def test_the_same_unfinished_submission_returns_the_same_job(ws, client_for, tmp_path):
    client = client_for(background=False)  # no run slots: the job stays queued
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'ci', 'admin')[1]}"}
    body = body_for(tmp_path, [put_inputs(ws)], "scored")
    first = client.post("/api/v1/jobs", json=body, headers=admin)
    second = client.post("/api/v1/jobs", json=body, headers=admin)
    assert first.status_code == second.status_code == 202, second.text
    a, b = first.json(), second.json()
    assert (a["created"], b["created"]) == (True, False)
    assert a["job_id"] == b["job_id"] and a["run_id"] == b["run_id"]
    assert a["job"]["state"] == "queued" and a["job"]["minibatches_total"] == 2
    assert len(list_jobs(ws)) == 1 and len(list_runs(ws.engine)) == 1
    # another script is another job
    (tmp_path / "b").mkdir()
    changed = body_for(tmp_path / "b", ["incoming/batch"], "scored")
    assert changed["bundle"] == body["bundle"]  # the same files pack the same
    changed = body_for(tmp_path / "b", ["incoming/batch"], "scored",
                       source="def run(mb):\n    return mb\n")
    third = client.post("/api/v1/jobs", json=changed, headers=admin)
    assert third.status_code == 202 and third.json()["job_id"] != a["job_id"]


def test_only_admins_submit_scripts(ws, client_for, tokens, tmp_path):
    client = client_for(background=False, auth="always")
    body = body_for(tmp_path, [put_inputs(ws)], "scored")
    assert client.post("/api/v1/jobs", json=body).status_code == 401
    for role in ("viewer", "operator"):
        r = client.post("/api/v1/jobs", json=body, headers=tokens[role])
        assert r.status_code == 403, r.text
        assert f"has role {role}; this needs admin" in r.json()["detail"]
    # the role is checked before the body: a viewer learns nothing about its request
    r = client.post("/api/v1/jobs", json={"nonsense": 1}, headers=tokens["viewer"])
    assert r.status_code == 403
    nothing_recorded(ws)
    # the pipeline that runs submitted jobs is an admin's too
    r = client.post("/api/v1/pipelines/batch-job/runs", json={"job": "job-x"},
                    headers=tokens["operator"])
    assert r.status_code == 403
    r = client.post("/api/v1/pipelines/batch-job/runs", json={"job": "job-x"},
                    headers=tokens["admin"])
    assert r.status_code == 404 and "no job with id 'job-x'" in r.json()["detail"]


@pytest.mark.parametrize(("inputs", "output", "reason"), [
    (["../secrets"], "scored", "input '../secrets' leaves the data store"),
    (["incoming/../../x"], "scored", "leaves the data store"),
    (["/etc"], "scored", "input '/etc' is absolute"),
    (["file:///etc/passwd"], "scored", "is not in the data store"),
    (["s3://other-bucket/x.txt"], "scored", "input 's3://other-bucket/x.txt' is not in the "
     "data store"),
    (["incoming/batch"], "../scored", "output '../scored' leaves the data store"),
    (["incoming/batch"], "/tmp/scored", "output '/tmp/scored' is absolute"),
    (["incoming/batch"], "az://elsewhere/scored", "is not in the data store"),
    (["incoming/missing"], "scored", "input 'incoming/missing' matches no file"),
    (["incoming/\x01batch"], "scored", "control characters"),
])
def test_paths_outside_the_data_store_are_refused(ws, client_for, tmp_path, inputs, output,
                                                  reason):
    client = client_for(background=False)
    put_inputs(ws)
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'ci', 'admin')[1]}"}
    r = client.post("/api/v1/jobs", json=body_for(tmp_path, inputs, output), headers=admin)
    assert r.status_code == 400, r.text
    assert reason in r.json()["detail"]
    no_service_folders(ws, r.json(), urls=False)  # only the client's own value
    nothing_recorded(ws)


def test_an_oversize_bundle_is_413_naming_the_limit(ws, client_for, tmp_path, monkeypatch):
    client = client_for(background=False)
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'ci', 'admin')[1]}"}
    body = body_for(tmp_path, [put_inputs(ws)], "scored")
    (tmp_path / "model" / "noise.bin").write_bytes(os.urandom(8192))  # incompressible
    big = body_for(tmp_path, ["incoming/batch"], "scored")
    monkeypatch.setattr(bundles, "MAX_BUNDLE_BYTES", 4096)
    r = client.post("/api/v1/jobs", json=big, headers=admin)
    assert r.status_code == 413, r.text
    assert "limit of 4096 bytes" in r.json()["detail"]
    nothing_recorded(ws)
    assert client.post("/api/v1/jobs", json=body, headers=admin).status_code == 202
    # job bodies may exceed the 1 MiB of other JSON bodies (bundles travel in them) ...
    two_mib = b"x" * (2 * 1024 * 1024)
    r = client.post("/api/v1/jobs", content=two_mib,
                    headers={**admin, "content-type": "application/json"})
    assert r.status_code in (400, 422), r.text  # read, and refused as bad JSON
    # ... up to their own limit, past which they are 413 before they are read
    monkeypatch.setattr(service_guard, "MAX_SUBMIT_BODY_BYTES", 1024 * 1024)
    r = client.post("/api/v1/jobs", content=two_mib,
                    headers={**admin, "content-type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]


@pytest.mark.parametrize(("change", "status", "reason"), [
    ({"scoring_script": "nope.py"}, 400, "scoring script 'nope.py' is not in the bundle's code "
     "(it holds score.py)"),
    ({"scoring_script": "../score.py"}, 400, "is not a plain path inside the bundle's code/"),
    ({"bundle": "not base64!"}, 400, "bundle is not valid base64"),
    ({"bundle": base64.b64encode(b"plain bytes").decode()}, 400,
     "bundle is not a valid .tar.gz archive"),
    ({"bundle": tar_of({"code/../../evil.py": b"x", "code/score.py": b"def run(m): pass"})},
     400, "bundle member 'code/../../evil.py' leaves its folder"),
    ({"bundle": tar_of({"/etc/cron.d/x": b"x"})}, 400, "is absolute"),
    ({"bundle": tar_of({"evil.py": b"x"})}, 400, "is neither below code/ nor below model/"),
    ({"bundle": tar_of({"code/score.py": b"def run(m): pass"},
                       links={"code/passwd": "/etc/passwd"})}, 400,
     "bundle member 'code/passwd' is a link or a special file"),
    ({"bundle": tar_of({"code/score.py": b"x", "model/a/w": b"1", "model/b/w": b"2"})}, 400,
     "more than one model folder: a, b"),
    ({"spec": {"code": "/srv/code"}}, 400, "spec.code names files on the submitting machine"),
    ({"spec": {"kind": "tabular"}}, 400, "spec.kind 'tabular'"),
    ({"spec": {"mini_batch_size": 0}}, 400, "spec: mini_batch_size: must be at least 1"),
    ({"spec": {"colour": "red"}}, 400, "spec: unknown key 'colour'"),
    ({"inputs": []}, 422, "inputs"),
    ({"extra": 1}, 422, "extra"),
    ({"model": "/srv/models/m"}, 400, "model '/srv/models/m': a job submitted to the service "
     "takes a registered model"),
    ({"model": "azureml://registries/shared/models/m/versions/1"}, 400,
     "takes a registered model"),
    ({"model": "azureml:m@latest"}, 400, "the bundle holds a model folder too"),
    ({"model": "models:/nope/1", "bundle": tar_of({"code/score.py": b"def run(m): pass"})},
     400, "no registered model named 'nope'"),
])
def test_bad_submissions_are_refused_with_a_reason(ws, client_for, tmp_path, change, status,
                                                   reason):
    client = client_for(background=False)
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'ci', 'admin')[1]}"}
    body = {**body_for(tmp_path, [put_inputs(ws)], "scored"), **change}
    r = client.post("/api/v1/jobs", json=body, headers=admin)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]
    nothing_recorded(ws)


def test_a_broken_script_is_refused_before_a_job_is_recorded(ws, client_for, tmp_path):
    client = client_for(background=False)
    admin = {"Authorization": f"Bearer {create_token(ws.engine, 'ci', 'admin')[1]}"}
    body = {**body_for(tmp_path, [put_inputs(ws)], "scored"),
            "bundle": tar_of({"code/score.py": b"def init():\n    pass\n"})}
    r = client.post("/api/v1/jobs", json=body, headers=admin)
    assert r.status_code == 400 and "defines no run(mini_batch) function" in r.json()["detail"]
    no_service_folders(ws, r.json())
    assert list_jobs(ws) == [] and list_runs(ws.engine) == []


def test_job_views_hide_the_service_folders(ws, client_for, tmp_path):
    """A job run on the service's machine with files outside the stores, and a reason that
    names the data store: the API shows names, data-store paths, and no password."""
    client = client_for(background=False, auth="off")
    script = tmp_path / "fail.py"
    script.write_text("def run(mb):\n    raise ValueError('cannot score this')\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.txt").write_text("1\n")
    spec = spec_from_mapping({"scoring_script": str(script), "error_threshold": 0,
                              "retry_settings": {"max_retries": 0, "timeout": 30},
                              "environment_variables": {
                                  "DB": "postgresql://scorer:s3cret@db/crm"}})
    job = run_job(ws, spec, [str(outside)], ws.data.url_of("scored"))
    assert job.state == "failed"
    shown = client.get(f"/api/v1/jobs/{job.id}").json()
    assert shown["inputs"] == ["file://…/a.txt"]
    assert shown["output_url"] == "scored"
    assert shown["spec"]["scoring_script"] == "…/fail.py"
    assert shown["spec"]["environment_variables"] == {"DB": "***"}  # names only
    views = [shown, client.get("/api/v1/jobs").json(),
             client.get(f"/api/v1/jobs/{job.id}/minibatches").json(),
             client.get(f"/api/v1/jobs/{job.id}/logs").json()]
    text = json.dumps(views)
    assert "s3cret" not in text and str(tmp_path) not in text and "file:///" not in text
    assert "cannot score" in views[2][0]["error"]


def test_a_remote_system_store_keeps_the_files_and_a_local_copy_runs(tmp_path, monkeypatch):
    """With a system store that is not a local folder (here fsspec's memory://), the files
    are kept in it, the code the job points at is a copy in this machine's temporary folder,
    and the model is read from the store by the workers."""
    import tempfile

    from batchscore.storage import Store

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    script, model = make_script(tmp_path)
    packed = pack_bundle(spec_from_mapping({"scoring_script": str(script),
                                            "model_dir": str(model)}))
    system = Store(f"memory://js-{os.getpid()}/system", "system")
    try:
        stored = bundles.store_bundle(system, packed.archive, "score.py")
        assert system.list(stored.prefix) == [f"{stored.prefix}/{n}" for n in (
            ".complete", "code/score.py", "model/model/weight.txt")]
        assert Path(stored.code, "score.py").read_text() == textwrap.dedent(SCORE)
        assert Path(stored.code).is_relative_to(tmp_path / "tmp")
        assert stored.model_dir == system.url_of(stored.prefix, "model", "model")
        assert bundles.store_bundle(system, packed.archive, "score.py") == stored
    finally:
        system.remove("", recursive=True)
