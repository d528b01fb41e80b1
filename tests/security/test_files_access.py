"""What the data and state of a workspace show and accept (issue 14, Medium and Low): secrets
in job settings show as names only; the state database, the signing key and the local admin
token are private files; links have a maximum lifetime; an operator cannot overwrite what the
service wrote; upload names are checked (400, never 500, nothing stray left behind)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import update

from batchscore.jobs import spec_from_mapping, submit_job
from batchscore.pipelines import data_url, get_run, request_run
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.service.links import sign_link
from batchscore.state.tables import pipeline_runs
from batchscore.workspace import Workspace
from service.svc_helpers import TestClient, make_clip

SECRET = "s3cret-Passw0rd-value"


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(ws, ServiceConfig(background=False, auth="always")),
                    base_url="http://localhost") as c:
        yield c


@pytest.fixture
def tokens(ws: Workspace) -> dict[str, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}
            for role in ("viewer", "operator", "admin")}


def _job_with_secret(ws: Workspace, tmp_path: Any) -> str:
    script = tmp_path / "score.py"
    script.write_text("def run(mb):\n    return mb\n")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("a")
    spec = spec_from_mapping({"scoring_script": str(script),
                              "environment_variables": {"DB_PASSWORD": SECRET, "MODE": "x"}})
    job, _ = submit_job(ws, spec, [str(inputs)], str(tmp_path / "out"))
    return job.id


def test_job_environment_variables_show_names_only(ws, client, tokens, tmp_path):
    job_id = _job_with_secret(ws, tmp_path)
    for role in ("viewer", "operator", "admin"):
        shown = client.get(f"/api/v1/jobs/{job_id}", headers=tokens[role])
        assert shown.status_code == 200
        assert shown.json()["spec"]["environment_variables"] == {"DB_PASSWORD": "***",
                                                                 "MODE": "***"}
        assert SECRET not in shown.text
        assert SECRET not in client.get("/api/v1/jobs", headers=tokens[role]).text
    canceled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=tokens["operator"])
    assert canceled.status_code == 200 and SECRET not in canceled.text


def test_state_db_signing_key_and_workspace_are_private(ws):
    root = ws.settings.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "state.db").stat().st_mode) == 0o600
    sign_link(ws, "x.txt")
    key = ws.system.local_path("service", "signing.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700


def test_a_link_longer_than_the_maximum_lifetime_is_refused(ws, client):
    ws.data.write_text("outgoing/report.csv", "a,b\n")
    url, _ = sign_link(ws, "outgoing/report.csv", ttl=30 * 365 * 86400.0)
    r = client.get(url)
    assert r.status_code == 403 and "longer than the service allows" in r.json()["detail"]
    url, _ = sign_link(ws, "outgoing/report.csv", ttl=60)
    assert client.get(url).content == b"a,b\n"


def test_service_link_ttl_above_the_maximum_is_refused():
    from batchscore.errors import UsageError

    with pytest.raises(UsageError, match="link_ttl"):
        ServiceConfig(link_ttl=10 * 86400.0, link_max_ttl=86400.0)


def test_operators_cannot_overwrite_what_the_service_wrote(ws, client, tokens, tmp_path):
    _job_with_secret(ws, tmp_path)  # its output is a local folder outside the data store
    out = ws.data.local_path("scored")
    spec = spec_from_mapping({"scoring_script": str(tmp_path / "score.py")})
    submit_job(ws, spec, [str(tmp_path / "in")], f"file://{out}")
    op, admin = tokens["operator"], tokens["admin"]
    for path in ("streams/sensors/windows/dt=2018-08-28/part-0.parquet",
                 "inference-logs/dt=2024-01-01/hour=01/x.parquet",
                 "scored/part-00000.csv", "scored"):
        r = client.put(f"/api/v1/data/{path}", content=b"forged", headers=op)
        assert r.status_code == 403, (path, r.text)
        assert "operator" in r.json()["detail"]
    assert not ws.data.exists("streams") and not ws.data.exists("inference-logs")
    assert client.put("/api/v1/data/incoming/new.csv", content=b"a", headers=op
                      ).status_code == 201
    assert client.put("/api/v1/data/scored/fix.csv", content=b"a", headers=admin
                      ).status_code == 201


def test_runs_show_data_store_paths_not_the_service_folders(ws, client, tokens):
    make_clip(ws.data.local_path("incoming", "clip.mp4"))
    run = request_run(ws, "video-style", {"input": "incoming/clip.mp4", "output": "outgoing/"})
    with ws.engine.begin() as conn:  # as a run slot records a finished run: full URLs
        conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run.id).values(
            state="succeeded", output_url=data_url(ws, f"outgoing/{run.id}/clip.mp4"),
            params={**run.params, "input": data_url(ws, "incoming/clip.mp4")}))
    assert get_run(ws.engine, run.id).output_url.startswith("file://")
    listed = client.get("/api/v1/runs", headers=tokens["viewer"])
    one = client.get(f"/api/v1/runs/{run.id}", headers=tokens["viewer"])
    for text in (listed.text, one.text):
        assert "file://" not in text and str(ws.settings.root) not in text
    assert one.json()["output_url"].startswith("outgoing/")


@pytest.mark.parametrize(("path", "reason"), [
    ("incoming/" + "n" * 300 + ".csv", "longer than 255 bytes"),
    ("incoming/ padded.csv", "begins or ends with spaces"),
    ("incoming/padded.csv ", "begins or ends with spaces"),
    ("incoming/ dir /a.csv", "begins or ends with spaces"),
    ("incoming/a.csv/inside.csv", "is a file, not a folder"),
    ("incoming/folder", "is a folder"),
])
def test_bad_upload_names_are_400_and_leave_nothing(ws, client, tokens, path, reason):
    ws.data.write_text("incoming/a.csv", "x")
    ws.data.write_text("incoming/folder/kept.csv", "y")
    r = client.put(f"/api/v1/data/{quote(path)}", content=b"data", headers=tokens["operator"])
    assert r.status_code == 400, r.text
    assert reason in r.json()["detail"]
    assert ws.data.list("incoming") == ["incoming/a.csv", "incoming/folder/kept.csv"]


def test_download_of_a_non_latin1_name(ws, client):
    name = "outgoing/résumé-日本-€.csv"
    ws.data.write_text(name, "ok")
    url, _ = sign_link(ws, name)
    r = client.get(url)
    assert r.status_code == 200 and r.content == b"ok"
    disposition = r.headers["content-disposition"]
    assert "filename*=UTF-8''" + quote("résumé-日本-€.csv", safe="") in disposition
    json.dumps(disposition).encode("ascii")
