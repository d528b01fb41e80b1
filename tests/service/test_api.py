"""The REST API: published pipeline runs, jobs, logs, tokens and roles, hostile input."""

from __future__ import annotations

import av
import pytest
from svc_helpers import FAST, wait_for

from batchscore.pipelines import get_run
from batchscore.service.links import sign_link

RUNS = "/api/v1/pipelines/video-style/runs"


def finished(client, run_id, headers=None):
    def check():
        run = client.get(f"/api/v1/runs/{run_id}", headers=headers or {}).json()
        return run if run["state"] in ("succeeded", "failed", "canceled") else None

    return wait_for(check)


def test_openapi_and_health(client_for):
    client = client_for(background=False)
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/pipelines/video-style/runs", "/api/v1/runs/{run_id}", "/api/v1/jobs",
            "/api/v1/jobs/{job_id}/minibatches", "/api/v1/jobs/{job_id}/logs",
            "/api/v1/triggers"} <= set(spec["paths"])
    body = spec["paths"]["/api/v1/pipelines/video-style/runs"]["post"]["requestBody"]
    assert "VideoStyleParams" in str(body)
    assert client.get("/healthz").json()["status"] == "ok"


def test_published_pipeline_run_end_to_end(ws, client_for, clip_in_data, tokens):
    client = client_for(auth="always")
    op = tokens["operator"]
    r = client.post(RUNS, json={"input": clip_in_data, "output": "outgoing/", "style": "7",
                                **FAST}, headers=op)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    run = finished(client, run_id, tokens["viewer"])
    assert run["state"] == "succeeded", run
    assert run["output_url"] == f"outgoing/{run_id}/clip.mp4"  # a data-store path
    job_id = run["job_id"]

    viewer = tokens["viewer"]
    mbs = client.get(f"/api/v1/jobs/{job_id}/minibatches", headers=viewer).json()
    assert [m["state"] for m in mbs] == ["done", "done"] and all(m["worker"] for m in mbs)
    logs = client.get(f"/api/v1/jobs/{job_id}/logs", headers=viewer).json()
    assert any(e["event"] == "job-finished" for e in logs["events"])
    assert logs["frames"] and all("ms_per_frame" in f for f in logs["frames"])
    assert [r["id"] for r in client.get("/api/v1/runs", headers=viewer).json()] == [run_id]

    link = client.get(f"/api/v1/runs/{run_id}/output", headers=viewer).json()
    data = client.get(link["url"])  # no token: the signature is the permission
    assert data.status_code == 200
    out = ws.data.local_path("outgoing", run_id, "downloaded.mp4")
    out.write_bytes(data.content)
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.video[0].frames == 24

    metrics = client.get("/metrics", headers=viewer).text
    assert 'batchscore_jobs{state="succeeded"} 1.0' in metrics
    assert "batchscore_minibatches_done 2.0" in metrics
    for name in ("batchscore_items_per_second", "batchscore_queue_depth", "batchscore_workers"):
        assert name in metrics


def test_signed_links_expire_and_cannot_be_altered(ws, client_for):
    client = client_for(background=False, auth="off")
    ws.data.write_text("outgoing/a.txt", "a")
    ws.data.write_text("outgoing/b.txt", "b")
    url, _ = sign_link(ws, "outgoing/a.txt", ttl=60)
    assert client.get(url).text == "a"
    assert client.get(url.replace("a.txt", "b.txt")).status_code == 403
    expired, _ = sign_link(ws, "outgoing/a.txt", ttl=-1)
    r = client.get(expired)
    assert r.status_code == 403 and "expired" in r.json()["detail"]


def test_roles(client_for, clip_in_data, tokens):
    client = client_for(background=False, auth="always")
    body = {"input": clip_in_data, "output": "outgoing/", **FAST}
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get("/api/v1/jobs", headers={"Authorization": "Bearer bs_nope"}
                      ).status_code == 401
    assert client.get("/api/v1/jobs", headers=tokens["viewer"]).status_code == 200
    r = client.post(RUNS, json=body, headers=tokens["viewer"])
    assert r.status_code == 403 and "needs operator" in r.json()["detail"]
    trigger = {"name": "t", "pipeline": "video-style", "prefix": "incoming/",
               "output": "outgoing/"}
    assert client.post("/api/v1/triggers", json=trigger, headers=tokens["operator"]
                       ).status_code == 403
    assert client.post("/api/v1/triggers", json=trigger, headers=tokens["admin"]
                       ).status_code == 201
    assert client.put("/api/v1/data/incoming/new.mp4", content=b"x",
                      headers=tokens["viewer"]).status_code == 403
    assert client.get("/api/v1/tokens", headers=tokens["operator"]).status_code == 403
    listed = client.get("/api/v1/tokens", headers=tokens["admin"]).json()
    assert {t["role"] for t in listed} == {"viewer", "operator", "admin"}
    assert all("token_hash" not in t and "token" not in t for t in listed)


def test_every_caller_needs_a_token_the_local_admin_reads_it_from_the_workspace(ws, client_for):
    client = client_for(background=False)  # auth auto
    assert client.get("/api/v1/jobs").status_code == 401
    token = (ws.settings.root / "service" / "admin.token").read_text().strip()
    mine = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200 and [t["name"] for t in mine.json()] == ["local-admin"]


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"input": "../etc/passwd.mp4", "output": "outgoing/"}, 400, "leaves the data store"),
    ({"input": "incoming/clip.mp4", "output": "outgoing/../../x/"}, 400,
     "leaves the data store"),
    ({"input": "/etc/x.mp4", "output": "outgoing/"}, 400, "is absolute"),
    ({"input": "az://other/clip.mp4", "output": "outgoing/"}, 400, "not in the data store"),
    ({"input": "s3://bucket/clip.mp4", "output": "outgoing/"}, 400, "not in the data store"),
    ({"input": "incoming/missing.mp4", "output": "outgoing/"}, 400, "does not exist"),
    ({"input": "incoming/clip.mp4", "output": "outgoing/x.txt"}, 400, "must end in"),
    ({"input": "incoming/clip.mp4", "output": "outgoing/", "style": "99;rm"}, 422, "style"),
    ({"input": "incoming/clip.mp4", "output": "outgoing/", "workers": 10_000}, 422, "workers"),
    ({"input": "incoming/clip.mp4", "output": "outgoing/", "script": "evil.py"}, 422,
     "Extra inputs"),
    ({"output": "outgoing/"}, 422, "input"),
])
def test_hostile_input_is_refused_before_any_run(ws, client_for, clip_in_data, body, status,
                                                  reason):
    client = client_for(background=False, auth="off")
    r = client.post(RUNS, json=body)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]
    assert client.get("/api/v1/runs").json() == []


def test_malformed_requests(client_for):
    client = client_for(background=False, auth="off", max_body_bytes=1000)
    r = client.post(RUNS, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = client.post("/api/v1/pipelines/rm-rf/runs", json={"input": "a.mp4"})
    assert r.status_code == 404 and "no pipeline named 'rm-rf'" in r.json()["detail"]
    r = client.post(RUNS, content=b"x" * 5000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit of 1000 bytes" in r.json()["detail"]
    assert client.get("/api/v1/runs/nope").status_code == 404
    assert client.get("/api/v1/jobs/nope").status_code == 404
    assert client.put("/api/v1/data/../system/scripts/x.py", content=b"x").status_code in (
        400, 404)
    r = client.put("/api/v1/data/incoming/%2e%2e/%2e%2e/system/x.py", content=b"x")
    assert r.status_code in (400, 404)
    assert client.get("/api/v1/jobs?state=exploded").status_code == 400


def test_upload_lands_in_the_data_store_only(ws, client_for):
    client = client_for(background=False, auth="off")
    r = client.put("/api/v1/data/incoming/up.bin", content=b"abc")
    assert r.status_code == 201 and r.json() == {"path": "incoming/up.bin", "size": 3}
    assert ws.data.read_bytes("incoming/up.bin") == b"abc"
    assert not any(p.startswith("incoming") for p in ws.system.list())


def test_rate_limit_on_run_submission(client_for, clip_in_data, tokens):
    client = client_for(background=False, auth="always", runs_per_minute=1, runs_burst=2)
    body = {"input": clip_in_data, "output": "outgoing/", **FAST}
    codes = [client.post(RUNS, json=body, headers=tokens["operator"]).status_code
             for _ in range(3)]
    assert codes == [202, 202, 429]
    r = client.post(RUNS, json=body, headers=tokens["admin"])  # another token, its own bucket
    assert r.status_code == 202


def test_cancel_a_queued_run(ws, client_for, clip_in_data):
    client = client_for(background=False, auth="off")
    run_id = client.post(RUNS, json={"input": clip_in_data, "output": "outgoing/"}).json()["id"]
    assert client.post(f"/api/v1/runs/{run_id}/cancel").json()["state"] == "canceled"
    assert get_run(ws.engine, run_id).state == "canceled"
    assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 400


def test_failed_run_shows_its_reason(ws, client_for):
    ws.data.write_bytes("incoming/broken.mp4", b"not a video at all")
    client = client_for(auth="off")
    run_id = client.post(RUNS, json={"input": "incoming/broken.mp4", "output": "outgoing/",
                                     **FAST}).json()["id"]
    run = finished(client, run_id)
    assert run["state"] == "failed" and "incoming/broken.mp4" in run["reason"]
    assert str(ws.data.root) not in run["reason"]  # no internal locations leak out
    output = client.get(f"/api/v1/runs/{run_id}/output")  # answered from the run's state
    assert output.status_code == 409
    assert output.json()["detail"] == f"run {run_id} is failed; it has no output yet"
