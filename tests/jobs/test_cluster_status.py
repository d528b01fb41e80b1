"""The cluster view (issue 19): ``GET /api/v1/cluster``, ``batchscore cluster status`` and
:func:`batchscore.jobs.cluster.cluster_status`, on the two-node Ray cluster the tests start (one
node killed mid-job: it shows as lost with the mini-batches run again because of it) and on the
local executor (the worker processes of a running job). Events, never timing: a worker's mark
says it runs a mini-batch; the job's end says what was re-run."""

from __future__ import annotations

import json
import os
import socket
import warnings

import pytest
from test_ray_executor import GATED, run_in_thread, wait_for_mark
from typer.testing import CliRunner

from batchscore.cli import app as cli
from batchscore.config import write_settings
from batchscore.jobs import job_logs, run_job, spec_from_mapping
from batchscore.jobs.cluster import cluster_status
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.state.jobs import list_attempts


@pytest.fixture
def ray_ws(ws, ray_cluster, monkeypatch):  # type: ignore[no-untyped-def]
    """The workspace on the session's Ray cluster (as in test_ray_executor.py)."""
    object.__setattr__(ws.settings, "executor", "ray")
    object.__setattr__(ws.settings, "ray_address", ray_cluster.address)
    monkeypatch.setenv("BATCHSCORE_RAY_ENV", "MARKS")
    monkeypatch.setenv("BATCHSCORE_RAY_PLACEMENT_TIMEOUT", "1")
    return ws


def _api(ws):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():  # starlette's test client warns about httpx (as in
        warnings.simplefilter("ignore")  # tests/service/svc_helpers.py)
        from fastapi.testclient import TestClient

    client = TestClient(create_app(ws, ServiceConfig(background=False)),
                        base_url="http://localhost")
    viewer = {"Authorization": f"Bearer {create_token(ws.engine, 'v', 'viewer')[1]}"}
    return client, viewer


@pytest.mark.ray
def test_a_node_killed_mid_job_shows_as_lost_with_its_reruns(  # type: ignore[no-untyped-def]
        ray_ws, ray_worker_node, script, files, marks, tmp_path):
    before = cluster_status(ray_ws)
    assert before["executor"] == "ray"
    alive = [n for n in before["nodes"] if n["state"] == "alive"]
    assert sorted(n["resources"]["cpus"] for n in alive)[-2:] == [2.0, 4.0]
    assert all(n["resources"]["memory_bytes"] > 0 and n["address"] for n in alive)
    inputs = files(20)
    spec = spec_from_mapping({"scoring_script": str(script(GATED)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 4,
                              "retry_settings": {"max_retries": 1, "timeout": 60}})
    thread, box = run_in_thread(
        lambda: run_job(ray_ws, spec, [str(inputs)], str(tmp_path / "out")))
    try:
        victim = wait_for_mark(marks, ray_worker_node.pids)  # a mini-batch runs on the node
        during = cluster_status(ray_ws)
        on_node = [n for n in during["nodes"]
                   if any(w["worker"].endswith(f":{victim}") for w in n["workers"])]
        assert len(on_node) == 1 and on_node[0]["state"] == "alive"
        node_id = on_node[0]["node_id"]
        ray_worker_node.kill()
    finally:
        (marks / "go").touch()
    thread.join(120)
    assert not thread.is_alive() and "error" not in box, box
    job = box["job"]
    assert job.state == "succeeded"
    after = cluster_status(ray_ws)
    node = next(n for n in after["nodes"] if n["node_id"] == node_id)
    assert node["state"] == "lost", node
    assert node["reruns"] and all(r["job_id"] == job.id for r in node["reruns"])
    victim_worker = f"{socket.gethostname()}:{victim}"
    assert any(r["worker"] == victim_worker for r in node["reruns"])
    # what the view says was re-run is what the attempts table and the job's log say
    died = {(a["idx"], a["worker"]) for a in list_attempts(ray_ws.engine, job.id)
            if a["outcome"] == "died"}
    requeued = {(e["minibatch"], r) for e in job_logs(ray_ws, job.id).events
                if e["event"] == "requeued" for r in [e["reason"].split("worker ")[1].split()[0]]}
    assert {(r["minibatch"], r["worker"]) for r in node["reruns"]} == (
        {d for d in died if d[1] in {w["worker"] for w in node["workers"]}} | requeued)
    assert any(n["state"] == "alive" and n["head"] for n in after["nodes"])

    client, viewer = _api(ray_ws)
    with client:
        assert client.get("/api/v1/cluster").status_code == 401
        answer = client.get("/api/v1/cluster", headers=viewer)
        assert answer.status_code == 200
        shown = {n["node_id"]: n["state"] for n in answer.json()["nodes"]}
        assert shown[node_id] == "lost"
    write_settings(ray_ws.settings)  # the CLI opens the workspace from its file
    printed = CliRunner().invoke(cli, ["cluster", "status", "-w", str(ray_ws.settings.root)])
    assert printed.exit_code == 0, printed.output
    assert f"node {node_id[:12]} " in printed.output
    line = next(x for x in printed.output.splitlines() if x.startswith(f"node {node_id[:12]}"))
    assert " lost: " in line, printed.output  # (Ray forgets a dead node's resources)
    assert f"re-run: job {job.id} mini-batch" in printed.output


def test_the_local_executor_lists_a_running_jobs_worker_processes(  # type: ignore[no-untyped-def]
        ws, script, files, marks, tmp_path):
    spec = spec_from_mapping({"scoring_script": str(script(GATED)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2})
    thread, box = run_in_thread(lambda: run_job(ws, spec, [str(files(4))], str(tmp_path / "o")))
    try:
        worker = wait_for_mark(marks)
        during = cluster_status(ws)
        client, viewer = _api(ws)
        with client:
            answer = client.get("/api/v1/cluster", headers=viewer).json()
        printed = CliRunner().invoke(cli, ["cluster", "status", "--json",
                                           "-w", str(ws.settings.root)])
    finally:
        (marks / "go").touch()
    thread.join(120)
    assert not thread.is_alive() and box["job"].state == "succeeded", box
    assert during["executor"] == "local" and during["nodes"] == []
    mine = {w["pid"]: w for w in during["workers"]}
    assert worker in mine and mine[worker]["job_id"] == box["job"].id
    assert mine[worker]["runner"] == f"{socket.gethostname()}:{os.getpid()}"
    assert mine[worker]["state"] in ("running", "sleeping", "disk-sleep")
    assert worker in {w["pid"] for w in answer["workers"]}
    assert printed.exit_code == 0 and worker in {
        w["pid"] for w in json.loads(printed.output)["workers"]}
    assert cluster_status(ws)["workers"] == []  # the job ended: no worker left


def test_two_jobs_of_one_process_each_list_their_own_workers(  # type: ignore[no-untyped-def]
        ws, script, files, marks, tmp_path):
    """As in the service: two jobs run on threads of one process, their workers forked by
    one fork server; each job lists its own worker, not the other's."""
    spec = spec_from_mapping({"scoring_script": str(script(GATED)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 1})
    inputs = str(files(1))
    runs = [run_in_thread(lambda o=o: run_job(ws, spec, [inputs], str(tmp_path / o)))
            for o in ("a", "b")]
    try:
        first = wait_for_mark(marks)
        second = wait_for_mark(marks, pids=lambda: {
            int(m.name.split("-")[1]) for m in marks.glob("run-*")} - {first})
        during = cluster_status(ws)
    finally:
        (marks / "go").touch()
    for thread, box in runs:
        thread.join(120)
        assert not thread.is_alive() and box["job"].state == "succeeded", box
    # (other children of this test process, the servers earlier tests started, may be
    # listed under both: the two workers are what tells the jobs apart)
    listed: dict[str, set[int]] = {box["job"].id: set() for _, box in runs}
    for worker in during["workers"]:
        if worker["pid"] in (first, second):
            listed[worker["job_id"]].add(worker["pid"])
    assert sorted(len(pids) for pids in listed.values()) == [1, 1], during
    assert set.union(*listed.values()) == {first, second}, during
