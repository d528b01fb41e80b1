"""The ray executor beyond the shared semantic suite: several nodes, lost workers and nodes,
per-worker resources, and bad input. (test_semantics.py runs every engine behaviour on both
executors.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from batchscore.errors import SpecError, UsageError
from batchscore.jobs import job_logs, run_job, spec_from_mapping
from batchscore.jobs.executors import make_executor
from batchscore.jobs.executors.ray import import_ray
from batchscore.jobs.kinds import WorkerConfig
from batchscore.jobs.spec import JobSpec
from batchscore.state.jobs import list_attempts
from batchscore.workspace import Workspace
from servers import free_port

# Each mini-batch leaves a mark named after the worker's pid, then waits at a gate until the
# file MARKS/go exists (two minutes at most), so that a test can kill a worker (or its node)
# while it runs, on a machine of any speed, and then let the others go on.
GATED = """
import os, time
def run(mini_batch):
    marks = os.environ["MARKS"]
    open(os.path.join(marks, f"run-{os.getpid()}-{len(os.listdir(marks))}"), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(marks, "go")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [f"{os.path.basename(p)} {int(open(p).read()) ** 2}" for p in mini_batch]
"""


def expected(n: int) -> str:
    return "".join(f"f{i:03d}.txt {i * i}\n" for i in range(n))


@pytest.fixture
def ray_ws(ws: Workspace, ray_cluster, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    object.__setattr__(ws.settings, "executor", "ray")
    object.__setattr__(ws.settings, "ray_address", ray_cluster.address)
    monkeypatch.setenv("BATCHSCORE_RAY_ENV", "MARKS")
    monkeypatch.setenv("BATCHSCORE_RAY_PLACEMENT_TIMEOUT", "1")
    return ws


def run_in_thread(target) -> tuple[threading.Thread, dict]:  # type: ignore[no-untyped-def]
    box: dict = {}

    def go() -> None:
        try:
            box["job"] = target()
        except BaseException as exc:  # pragma: no cover - reported by the test
            box["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, box


def wait_for_mark(marks: Path, pids: Callable[[], set[int]] | None = None,
                  timeout: float = 60) -> int:
    """The pid of a worker that has started a mini-batch (one of ``pids()`` if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        among = pids() if pids is not None else None
        for mark in marks.glob("run-*"):
            pid = int(mark.name.split("-")[1])
            if among is None or pid in among:
                return pid
        time.sleep(0.05)
    raise AssertionError("no worker started a mini-batch in time")


def assert_exactly_once(ws: Workspace, job_id: str, n: int) -> list[dict]:
    attempts = list_attempts(ws.engine, job_id)
    ok = Counter(a["idx"] for a in attempts if a["outcome"] == "ok")
    assert sorted(ok) == list(range(n)) and set(ok.values()) == {1}
    return attempts


@pytest.mark.ray
def test_killed_worker_node_costs_only_its_minibatches(
    ray_ws, ray_worker_node, script, files, marks, tmp_path, monkeypatch
):
    """A pre-empted VM: every process of the second node is killed mid-job."""
    inputs = files(20)  # the head's workers wait at the gate: the node's actors get work too
    spec = spec_from_mapping({"scoring_script": str(script(GATED)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 4,
                              "retry_settings": {"max_retries": 1, "timeout": 60}})
    thread, box = run_in_thread(
        lambda: run_job(ray_ws, spec, [str(inputs)], str(tmp_path / "out")))
    try:
        victim = wait_for_mark(marks, ray_worker_node.pids)  # a mini-batch runs on the node
        ray_worker_node.kill()
    finally:
        (marks / "go").touch()
    thread.join(120)
    assert not thread.is_alive() and "error" not in box, box
    job = box["job"]
    assert job.state == "succeeded" and (job.items_succeeded, job.items_failed) == (20, 0)
    assert (tmp_path / "out/predictions.csv").read_text() == expected(20)
    attempts = assert_exactly_once(ray_ws, job.id, 20)
    # What ran on the node is re-run: uncounted when Ray reports the node lost first
    # ("requeued"), as one "died" attempt when it reports the actor's death first.
    events = job_logs(ray_ws, job.id).events
    requeued = [e for e in events if e["event"] == "requeued"]
    died = [a for a in attempts if a["outcome"] == "died"]
    assert requeued or died
    assert all("was lost" in e["reason"] for e in requeued)
    assert not requeued or any(str(victim) in e["reason"] for e in requeued)


@pytest.mark.ray
def test_killed_worker_process_costs_its_minibatch_one_attempt(
    ray_ws, script, files, marks, tmp_path
):
    inputs = files(8)
    spec = spec_from_mapping({"scoring_script": str(script(GATED)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2})
    thread, box = run_in_thread(
        lambda: run_job(ray_ws, spec, [str(inputs)], str(tmp_path / "out")))
    try:
        victim = wait_for_mark(marks)
        os.kill(victim, signal.SIGKILL)
    finally:
        (marks / "go").touch()
    thread.join(120)
    assert not thread.is_alive() and "error" not in box, box
    job = box["job"]
    assert job.state == "succeeded" and job.items_succeeded == 8
    assert (tmp_path / "out/predictions.csv").read_text() == expected(8)
    attempts = assert_exactly_once(ray_ws, job.id, 8)
    died = [a for a in attempts if a["outcome"] == "died"]
    assert len(died) == 1 and died[0]["worker"].endswith(f":{victim}")
    assert "Ray actor died" in job_logs(ray_ws, job.id).errors


@pytest.mark.ray
def test_resource_request_no_node_can_hold_fails_clearly(ray_ws, script, files, tmp_path):
    spec = spec_from_mapping({"scoring_script": str(script("def run(mb):\n    return mb\n")),
                              "resources": {"instance_count": 1, "num_gpus": 1,
                                            "num_cpus": 2}})
    # the placement wait ends by itself (the message says how long it waited), not by a
    # timeout of the test's: a hang would stop the test at pytest's own timeout
    with pytest.raises(SpecError, match=r"no Ray node can hold one worker with num_cpus=2, "
                       r"num_gpus=1 \(waited 1s\); the cluster's nodes have: .*CPU=4"):
        run_job(ray_ws, spec, [str(files(2))], str(tmp_path / "out"))


@pytest.mark.ray
def test_script_that_cannot_be_imported_on_workers_fails_the_job(
    ray_ws, script, files, tmp_path
):
    broken = script("import module_that_is_not_installed\ndef run(mb):\n    return mb\n")
    job = run_job(ray_ws, spec_from_mapping({"scoring_script": str(broken)}),
                  [str(files(2))], str(tmp_path / "out"))
    assert job.state == "failed"
    assert "loading the scoring script failed" in job.reason
    assert "No module named 'module_that_is_not_installed'" in job.reason


@pytest.mark.ray
def test_settings_that_cannot_be_pickled_are_refused(ray_cluster, tmp_path):
    spec = JobSpec(scoring_script="x.py", options={"lock": threading.Lock()})
    cfg = WorkerConfig("job-x", spec, (), f"file://{tmp_path}", "logs", str(tmp_path), "parts",
                       str(tmp_path / "scratch"))
    with pytest.raises(SpecError, match=r"could not be sent to the Ray workers.*lock"):
        make_executor("ray").start(cfg, 1)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"pip install 'batchscore\[ray\]'"):
        import_ray()


def test_resources_per_worker_in_the_deployment_yaml(tmp_path):
    (tmp_path / "d.yml").write_text(
        "code_configuration: {code: ., scoring_script: s.py}\n"
        "resources: {instance_count: 2, num_gpus: 1, num_cpus: 2}\n"
        "settings: {max_concurrency_per_instance: 3}\n")
    from batchscore.jobs import load_spec

    spec = load_spec(tmp_path / "d.yml")
    assert (spec.instance_count, spec.num_gpus, spec.num_cpus, spec.workers) == (2, 1, 2, 6)
    (tmp_path / "bad.yml").write_text("resources: {num_gpu: 1}\n")
    with pytest.raises(SpecError, match=r"unknown key resources.num_gpu .*'num_gpus'"):
        load_spec(tmp_path / "bad.yml")


def test_unknown_executor_is_refused(ws, script, files, tmp_path):
    with pytest.raises(SpecError, match="unknown executor 'dask'; available: 'local', 'ray'"):
        run_job(ws, spec_from_mapping({"scoring_script": str(script("def run(m):\n  return m"))}),
                [str(files(1))], str(tmp_path / "out"), executor="dask")


def test_cluster_address_that_does_not_answer_fails_fast(ws, script, files, tmp_path):
    """Through the CLI: a clear message and exit code 2, without waiting out Ray's retries."""
    pytest.importorskip("ray", reason="Ray is not installed; pip install -e '.[ray]'")
    port = free_port()
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    proc = subprocess.run(
        [sys.executable, "-m", "batchscore", "job", "run", "--scoring-script",
         str(script("def run(mb):\n    return mb\n")), "-i", str(files(2)), "-o",
         str(tmp_path / "out"), "--ray-address", f"ray://127.0.0.1:{port}", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"the Ray cluster at 'ray://127.0.0.1:{port}' does not answer" in message
    # fast: a TCP probe found nothing listening, before Ray's client retried for minutes
    assert f"a TCP connection to 127.0.0.1:{port} failed" in message


@pytest.mark.ray
def test_job_through_the_ray_client_address(ray_cluster, ws, script, files, tmp_path):
    """`--ray-address ray://host:port` joins a running cluster as a Ray Client."""
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root)}
    proc = subprocess.run(
        [sys.executable, "-m", "batchscore", "job", "run", "--scoring-script",
         str(script("import os\ndef run(mb):\n    return [os.path.basename(p) for p in mb]\n")),
         "-i", str(files(4)), "-o", str(tmp_path / "out"), "--mini-batch-size", "1",
         "--max-concurrency-per-instance", "2",
         "--ray-address", f"ray://127.0.0.1:{ray_cluster.client_port}", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/predictions.csv").read_text().split() == [
        f"f{i:03d}.txt" for i in range(4)]


@pytest.mark.ray
def test_workers_asking_for_a_gpu_run_on_the_gpu_node(
    ray_ws, ray_gpu_node, script, files, marks, tmp_path
):
    where = script("""
        import os
        def run(mb):
            gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
            open(os.path.join(os.environ["MARKS"], f"gpu-{os.getpid()}-{gpus}"), "w").close()
            return mb
    """)
    spec = spec_from_mapping({"scoring_script": str(where), "mini_batch_size": 1,
                              "resources": {"instance_count": 1, "num_gpus": 1}})
    job = run_job(ray_ws, spec, [str(files(3))], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    seen = {tuple(p.name.split("-")[1:]) for p in marks.glob("gpu-*")}
    assert seen and all(int(pid) in ray_gpu_node.pids() and gpus == "0" for pid, gpus in seen)
