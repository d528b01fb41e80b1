"""`batchscore.client.Client` against the real service (the ``service`` fixture), and the two
backends of the CLI giving the same answers about one job."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from batchscore.apimodels import JobView
from batchscore.backend import open_backend
from batchscore.backend.local import LocalBackend
from batchscore.backend.remote import RemoteBackend
from batchscore.client import Client
from batchscore.errors import ServiceError, UsageError
from batchscore.jobs import run_job, spec_from_mapping, submit_job
from servers import free_port

FAILS_ONE = "def run(mb):\n    if mb[0].endswith('f001.txt'):\n        raise ValueError('bad')\n" \
            "    return mb\n"


def _spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    script = tmp_path / "score.py"
    script.write_text(FAILS_ONE)
    return spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 1,
                              "retry_settings": {"max_retries": 0, "timeout": 30}})


def test_jobs_through_the_client_and_both_backends_agree(ws, service, tmp_path, files):
    spec = _spec(tmp_path)
    done = run_job(ws, spec, [str(files(3))], str(tmp_path / "out"))
    queued, _ = submit_job(ws, spec, [str(files(2, "more"))], str(tmp_path / "out2"))
    with Client(service, os.environ["BATCHSCORE_TOKEN"]) as api:
        assert [j.id for j in api.list_jobs(limit=10)] == [queued.id, done.id]
        assert [j.id for j in api.list_jobs(state="queued")] == [queued.id]
        job = api.get_job(done.id)
        assert isinstance(job, JobView)
        assert (job.state, job.items_succeeded, job.items_failed) == ("succeeded", 2, 1)
        states = sorted(mb.state for mb in api.minibatches(done.id))
        assert states == ["done", "done", "failed"]
        assert "ValueError: bad" in api.job_logs(done.id).errors
        with pytest.raises(ServiceError, match=r"the service answered 404: .*job-nope") as err:
            api.get_job("job-nope")
        assert err.value.status == 404 and err.value.exit_code == 2

        remote, local = RemoteBackend(service, client=api), LocalBackend(ws)
        for job_id in (done.id, queued.id):
            assert remote.job_progress(job_id) == local.job_progress(job_id)
            mine, theirs = local.get_job(job_id), remote.get_job(job_id)
            for key in ("id", "name", "state", "display_state", "reason", "minibatches_total",
                        "items_total", "items_succeeded", "items_failed", "created_at"):
                assert mine[key] == theirs[key], key
        progress = local.job_progress(done.id)
        assert (progress.minibatches_done, progress.minibatches_failed) == (2, 1)
        assert api.cancel_job(queued.id).state == "canceled"
        assert remote.job_progress(queued.id) == local.job_progress(queued.id)
        assert local.job_progress(queued.id).state == "canceled"


def test_the_other_resources_through_the_client(ws, service, tmp_path):
    with Client(service, os.environ["BATCHSCORE_TOKEN"]) as api:
        names = {p.name for p in api.list_pipelines()}
        assert {"video-style", "batch-endpoint"} <= names
        with pytest.raises(ServiceError) as err:
            api.start_run("no-such-pipeline", {})
        assert err.value.status == 404
        with pytest.raises(ServiceError, match="the service answered 422"):
            api.start_run("video-style", {"input": "incoming/a.mp4", "nonsense": 1})

        made = api.add_trigger(name="videos", pipeline="video-style", params={"style": "7"},
                               prefix="incoming/", pattern="*.mp4", output="outgoing/")
        assert (made.name, made.kind) == ("videos", "storage")
        assert [t.name for t in api.list_triggers()] == ["videos"]
        assert api.get_trigger("videos").ledger == []
        assert api.delete_trigger("videos").name == "videos"
        with pytest.raises(ServiceError, match="404"):
            api.get_trigger("videos")

        assert api.upload("incoming/a b.txt", b"hello").model_dump() == {
            "path": "incoming/a b.txt", "size": 5}
        assert ws.data.read_text("incoming/a b.txt") == "hello"
        with pytest.raises(ServiceError, match=r"the service refused the upload \(400\)"):
            api.upload("incoming/ spaced/x.txt", b"x")

        assert api.list_endpoints() == [] and api.list_streams() == []
        for missing in (lambda: api.get_endpoint("nope"), lambda: api.list_deployments("nope"),
                        lambda: api.get_stream("nope"), lambda: api.get_run("run-nope")):
            with pytest.raises(ServiceError) as err:
                missing()
            assert err.value.status == 404
        assert api.list_runs() == []

    with Client(service, "not-a-token") as stranger, pytest.raises(ServiceError) as err:
        stranger.list_jobs()
    assert err.value.status == 401


def test_a_service_that_cannot_be_reached_is_one_clear_error():
    server = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UsageError, match=f"cannot reach the service at {server}"):
        open_backend(server=server).list_jobs(limit=1, state=None)


def _mock(handler) -> Client:  # type: ignore[no-untyped-def]
    return Client("http://service.test", "t0ken", transport=httpx.MockTransport(handler))


def test_errors_without_json_and_the_token_sent():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(ServiceError, match="the service answered 502: bad gateway"):
        _mock(handler).get_run("r/../x")
    assert seen == ["Bearer t0ken"]


def test_a_failed_download_leaves_nothing_and_sends_no_token(tmp_path):
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append((request.url.path, request.headers.get("authorization")))
        return httpx.Response(403, text="link expired")

    target = tmp_path / "out.mp4"
    with pytest.raises(ServiceError, match=r"download of the output failed \(403\)"):
        _mock(handler).download("/api/v1/download?path=x&expires=1&sig=y", target)
    assert asked == [("/api/v1/download", None)]
    assert list(tmp_path.iterdir()) == []


def test_ids_stay_inside_their_path_segment():
    paths = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={})

    with pytest.raises(ServiceError, match=r"answer to GET /jobs/\.\.%2Ftokens is not a JobView"):
        _mock(handler).get_job("../tokens")
    assert paths == ["/api/v1/jobs/..%2Ftokens"]


def test_no_token_goes_to_another_host_by_default(monkeypatch, tmp_path):
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "admin.token").write_text("local-admin\n")
    monkeypatch.setenv("BATCHSCORE_WORKSPACE", str(tmp_path))
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=[])

    for server in ("http://127.0.0.1:9", "http://scoring.example:8000"):
        Client(server, transport=httpx.MockTransport(handler)).list_jobs()
    assert seen == ["Bearer local-admin", None]


def test_typed_answers_give_back_the_json_the_service_sent():
    run = {"id": "run-1", "pipeline": "batch-endpoint", "params": {"input": "a"},
           "state": "queued", "run_key": None, "trigger_id": None, "job_id": None,
           "output_url": None, "reason": None, "created_by": "admin", "runner": None,
           "created_at": 1.5, "started_at": None, "finished_at": None}
    detail = {"name": "e", "spec": {"kind": "tabular"}, "model": "models:/m/1",
              "description": None, "created_by": "admin", "created_at": 1.0,
              "updated_at": 2.0, "kind": "tabular",
              "invocations": [run, {**run, "id": "run-2", "job": {
                  "state": "running", "items_total": 3, "items_succeeded": 1,
                  "items_failed": 0}}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=detail)

    remote = RemoteBackend("http://service.test", client=_mock(handler))
    plain = remote.get_endpoint("e")
    assert plain == detail and list(plain) == list(detail)
    assert [list(r) for r in plain["invocations"]] == [list(run), [*run, "job"]]
    endpoint = remote.client.get_endpoint("e")
    assert endpoint.invocations[1].job.items_total == 3 and endpoint.invocations[0].job is None
    with pytest.raises(ServiceError, match="answer to GET /endpoints is not a list") as err:
        remote.list_endpoints()
    assert err.value.status == 502
    with pytest.raises(ServiceError, match=r"is not a EndpointDetail \(1 problem\(s\); kind: "):
        _mock(lambda request: httpx.Response(200, json={
            k: v for k, v in detail.items() if k != "kind"})).get_endpoint("e")
