"""Crash recovery: kill the runner at each named point (and at random moments), resume, and
get exactly the output of an undisturbed run, without re-running finished mini-batches."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from batchscore.crash import POINTS
from batchscore.jobs import list_jobs, resume_job, run_job, spec_from_mapping
from batchscore.state.jobs import list_attempts
from batchscore.workspace import Workspace
from helpers import pid_alive

# With $GATE set, run() leaves a mark "running-<pid>" there, then waits until the file
# GATE/go exists (five minutes at most, longer than any test waits: a runner that waited for
# its held mini-batches fails the test): a test acts on a job that is visibly mid-run,
# whatever the machine's speed, then lets it go on.
SCRIPT = """
import os, time
def run(mini_batch):
    time.sleep(float(os.environ.get("SLOW", "0")))
    gate = os.environ.get("GATE")
    if gate:
        open(os.path.join(gate, f"running-{os.getpid()}"), "w").close()
        deadline = time.monotonic() + 300
        while not os.path.exists(os.path.join(gate, "go")) and time.monotonic() < deadline:
            time.sleep(0.02)
    return [f"{os.path.basename(p)} {int(open(p).read()) ** 2}" for p in mini_batch]
"""


def cli(ws: Workspace, *args: str, env: dict[str, str] | None = None,
        **kwargs: object) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "BATCHSCORE_WORKSPACE": str(ws.settings.root), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "batchscore", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def job_args(script: Path, inputs: Path, out: Path) -> list[str]:
    return ["job", "run", "--scoring-script", str(script), "-i", str(inputs), "-o", str(out),
            "--mini-batch-size", "2", "--max-concurrency-per-instance", "2", "--no-progress"]


@pytest.fixture
def setup(ws, tmp_path, files):
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    inputs = files(15)
    reference = tmp_path / "reference"
    proc = cli(ws, *job_args(script, inputs, reference))
    assert proc.wait(60) == 0, proc.stderr.read()
    return script, inputs, (reference / "predictions.csv").read_bytes()


def wait_until_running(gate: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until a worker of ``proc``'s job is inside run() (it left its mark in ``gate``)."""
    deadline = time.monotonic() + timeout
    while not any(gate.glob("running-*")):
        assert proc.poll() is None, f"the job ended first: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no mini-batch started within the deadline"
        time.sleep(0.02)


def assert_exactly_once(ws: Workspace, job_id: str) -> None:
    ok = Counter(a["idx"] for a in list_attempts(ws.engine, job_id) if a["outcome"] == "ok")
    assert sorted(ok) == list(range(8)) and set(ok.values()) == {1}


@pytest.mark.parametrize("point", [*POINTS, "attempt-recorded:3"])
def test_kill_at_each_crash_point_then_rerun_gives_identical_output(ws, setup, tmp_path, point):
    script, inputs, reference = setup
    out = tmp_path / "out"
    crashed = cli(ws, *job_args(script, inputs, out), env={"BATCHSCORE_CRASH_AT": point})
    assert crashed.wait(60) == -signal.SIGKILL
    if point not in ("marker-written", "output-committed"):
        assert not (out / "predictions.csv").exists()  # nothing at the output location yet
    again = cli(ws, *job_args(script, inputs, out))  # the same command resumes
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert (out / "predictions.csv").read_bytes() == reference
    job = [j for j in list_jobs(ws) if j.output_url.endswith("/out")]
    assert len(job) == 1 and job[0].state == "succeeded"  # one job, resumed, not a second
    assert_exactly_once(ws, job[0].id)


@pytest.mark.parametrize("delay", [0.0, 0.4, 0.9, 1.5])
def test_kill_9_at_any_moment_then_job_resume(ws, setup, tmp_path, delay):
    script, inputs, reference = setup
    out = tmp_path / "out"
    proc = cli(ws, *job_args(script, inputs, out), env={"SLOW": "0.15"})
    deadline = time.monotonic() + 120
    while not (jobs := [j for j in list_jobs(ws) if j.output_url.endswith("/out")]):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    # A moment from just after the job is recorded to well into its run. Which moment it
    # hits depends on the machine's speed, and every outcome is checked below (not claimed
    # yet, mid-run, or already succeeded), so the test does not race the clock.
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    job = list_jobs(ws)[0]
    assert job.id == jobs[0].id
    workers = ws.system.local_path("jobs", job.id, "logs", "workers")
    pids = {int(p.name.split(".")[0].rsplit("-", 1)[1]) for p in workers.glob("*")} \
        if workers.is_dir() else set()
    deadline = time.monotonic() + 60
    while any(pid_alive(pid) for pid in pids):  # orphaned workers exit by themselves
        assert time.monotonic() < deadline, f"workers {pids} outlived their runner"
        time.sleep(0.1)
    if job.state != "succeeded":
        assert job.display_state in ("queued", "interrupted")  # killed before or after claiming
        resumed = cli(ws, "job", "resume", job.id, "--no-progress")
        _, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
    assert (out / "predictions.csv").read_bytes() == reference
    assert_exactly_once(ws, job.id)


def test_ctrl_c_leaves_a_job_that_resumes_at_once(ws, setup, tmp_path):
    script, inputs, reference = setup
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.mkdir()
    # the mini-batches wait at the gate: Ctrl-C lands mid-run on any machine
    proc = cli(ws, *job_args(script, inputs, out), env={"GATE": str(gate)})
    wait_until_running(gate, proc)
    proc.send_signal(signal.SIGINT)
    # the runner stops its workers, held at the gate, without waiting for them (the gate
    # holds them longer than this safety net)
    assert proc.wait(120) == 130, proc.stderr.read().decode()
    job = next(j for j in list_jobs(ws) if j.output_url.endswith("/out"))
    assert job.display_state == "interrupted"
    (gate / "go").touch()
    resumed = cli(ws, "job", "resume", job.id[:16], "--no-progress", env={"GATE": str(gate)})
    assert resumed.wait(60) == 0, resumed.stderr.read().decode()
    assert (out / "predictions.csv").read_bytes() == reference


def test_ctrl_c_stops_workers_held_in_run_even_where_a_keyboard_interrupt_is_lost(
        ws, tmp_path, files, monkeypatch):
    """Ctrl-C lands while the runner's main thread runs code that swallows a
    KeyboardInterrupt (a finalizer does, so does a library's broad ``except``; here, the
    progress callback). The runner still stops at once: its workers, held in run(), are
    stopped rather than waited for, and the job resumes."""
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv("GATE", str(gate))  # the forked workers' run() waits at the gate
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    spec = spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 2,
                              "max_concurrency_per_instance": 2})
    pressed: list[int] = []

    def progress(_snapshot: object) -> None:
        if pressed or not any(gate.glob("running-*")):
            return
        pressed.append(signal.SIGINT)
        with contextlib.suppress(KeyboardInterrupt):  # lost, as in a finalizer
            signal.raise_signal(signal.SIGINT)  # its handler runs before this returns

    with pytest.raises(KeyboardInterrupt):
        run_job(ws, spec, [str(files(15))], str(tmp_path / "out"), progress=progress)
    assert pressed
    job = list_jobs(ws)[0]
    assert job.display_state == "interrupted"
    held = [int(p.name.rsplit("-", 1)[1]) for p in gate.glob("running-*")]
    assert held and not any(pid_alive(pid) for pid in held)  # stopped and reaped
    # none of the held mini-batches finished: the runner did not wait for them
    assert not [a for a in list_attempts(ws.engine, job.id) if a["outcome"] == "ok"]
    (gate / "go").touch()
    assert resume_job(ws, job.id).state == "succeeded"
    assert_exactly_once(ws, job.id)


def test_cancel_a_running_job_stops_its_runner_and_keeps_the_output_location_empty(
    ws, setup, tmp_path
):
    script, inputs, _ = setup
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.mkdir()
    proc = cli(ws, *job_args(script, inputs, out), env={"GATE": str(gate)})  # never let go
    wait_until_running(gate, proc)
    job = next(j for j in list_jobs(ws) if j.state == "running")
    canceled = cli(ws, "job", "cancel", job.id)
    assert canceled.wait(60) == 0, canceled.stderr.read().decode()
    assert proc.wait(60) == 1  # the runner stopped at its next heartbeat and said so
    assert "canceled" in proc.stdout.read().decode()
    final = next(j for j in list_jobs(ws) if j.id == job.id)
    assert final.state == "canceled" and final.reason == "canceled by request"
    assert not out.exists()
