"""The seeds' scenario end to end against the Azure Blob emulator: an mp4 uploaded to the
container ``incoming`` starts the pipeline; the styled mp4, with its audio, appears in
``outgoing``; the run, its mini-batches and logs are visible through the API. Uploaded again
under the same name (a new etag), it is processed again and the first output is kept."""

from __future__ import annotations

import av
import pytest
from svc_helpers import CLIP, FAST, TestClient, wait_for

from batchscore.service import ServiceConfig, create_app
from batchscore.workspace import open_workspace
from helpers import left_in_tmp
from video.conftest import write_clip

pytest.importorskip("adlfs")


@pytest.fixture
def az_ws(ws, azure_env, monkeypatch):
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("BATCHSCORE_DATA_STORE", "az://")
    service = BlobServiceClient.from_connection_string(azure_env)
    for name in ("incoming", "outgoing"):
        if not service.get_container_client(name).exists():
            service.create_container(name)
    workspace = open_workspace(ws.settings.root)
    yield workspace, service
    workspace.close()
    for name in ("incoming", "outgoing"):
        service.delete_container(name)


def test_upload_to_incoming_gives_a_styled_video_in_outgoing(az_ws, tmp_path, machine_tmp):
    ws, blobs = az_ws
    assert ws.settings.data_store == "az://"
    clip = write_clip(tmp_path / "clip.mp4", CLIP)
    incoming = blobs.get_container_client("incoming")
    outgoing = blobs.get_container_client("outgoing")
    incoming.upload_blob("old.mp4", clip.read_bytes())  # there before the trigger: left alone
    app = create_app(ws, ServiceConfig(auth="off", scan_interval=0.3, run_slots=1))
    with TestClient(app, base_url="http://localhost") as client:  # a Host it answers
        r = client.post("/api/v1/triggers", json={
            "name": "videos", "pipeline": "video-style", "prefix": "incoming/",
            "pattern": "*.mp4", "output": "outgoing/", "settle_seconds": 0.5,
            "params": {"style": "7", **FAST}})
        assert r.status_code == 201, r.text
        incoming.upload_blob("clip.mp4", clip.read_bytes())

        def runs(n):
            found = client.get("/api/v1/runs").json()
            done = [x for x in found if x["state"] in ("succeeded", "failed")]
            return found if len(found) >= n and len(done) == len(found) else None

        [run] = wait_for(lambda: runs(1), timeout=90)
        assert run["state"] == "succeeded", run
        assert run["params"]["input"] == "incoming/clip.mp4"
        assert run["output_url"] == f"outgoing/{run['id']}/clip.mp4"  # a data-store path

        styled = tmp_path / "styled.mp4"
        styled.write_bytes(outgoing.download_blob(f"{run['id']}/clip.mp4").readall())
        with av.open(str(styled)) as container:
            assert [s.type for s in container.streams] == ["video", "audio"]
            assert container.streams.video[0].frames == 24

        job_id = run["job_id"]
        mbs = client.get(f"/api/v1/jobs/{job_id}/minibatches").json()
        assert [m["state"] for m in mbs] == ["done", "done"]
        logs = client.get(f"/api/v1/jobs/{job_id}/logs").json()
        assert [e["event"] for e in logs["events"]][-1] == "job-finished"
        # the copies of the remote video, its chunks and the joined video before its upload
        assert left_in_tmp(machine_tmp) == []
        trigger = client.get("/api/v1/triggers/videos").json()
        assert {(x["path"], x["state"]) for x in trigger["ledger"]} == {
            ("incoming/old.mp4", "baseline"), ("incoming/clip.mp4", "started")}

        # The same name again: a new etag, a new run; the first output stays.
        incoming.upload_blob("clip.mp4", clip.read_bytes(), overwrite=True)
        second = [x for x in wait_for(lambda: runs(2), timeout=90) if x["id"] != run["id"]]
        assert [x["state"] for x in second] == ["succeeded"]
        names = sorted(b.name for b in outgoing.list_blobs())
        assert names == sorted(f"{r}/clip.mp4{extra}" for r in (run["id"], second[0]["id"])
                               for extra in ("", ".contact.png", ".quality.json"))
