"""A job's workers never inherit a lock another thread holds, and a worker start-up that never
ends cannot hold a run (and its slot) forever.

Before the fix workers were forked from whatever process ran the job: from the service (run
slots are threads) a worker could inherit a lock that another thread held at that moment, and
hang in ``init()`` for good; the pool waited 30 minutes per try before replacing it. Such
workers were then spawned (seconds of imports per job); now a fork server forks them: a
single-threaded process of its own, which imported the workers' modules once."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from batchscore.errors import UsageError
from batchscore.jobs import get_job, job_logs, run_job, spec_from_mapping
from batchscore.jobs.executors.local import init_seconds, start_method, start_worker_server
from batchscore.jobs.executors.preload import import_modules
from batchscore.service import context as service_context
from batchscore.workspace import Workspace
from helpers import pid_alive, wait_for

HELPER = """
import threading
LOCK = threading.Lock()  # module state: a forked child copies it as it is
"""

TAKES_THE_LOCK = """
import os
import held_lock_module

def init():
    held_lock_module.LOCK.acquire()  # blocks forever if it was copied while held
    held_lock_module.LOCK.release()

def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""

HANGS = """
import os
import threading

def init():
    if "PIDS" in os.environ:
        open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
    threading.Event().wait()  # never returns

def run(mini_batch):
    return list(mini_batch)
"""


WHO_STARTED_ME = """
import contextlib
import json
import os
import sys

def run(mini_batch):
    return [json.dumps({"parent": os.getppid(), "mark": os.environ.get("BATCHSCORE_TEST_MARK"),
                        "preloaded": "batchscore.tabular.job" in sys.modules,
                        "warm": sorted(m for m in sys.modules if m in (
                            "batchscore.cli", "pyarrow.pandas_compat")
                            or m.startswith("narwhals._pandas_like"))})
            for _ in mini_batch]
"""


def _on_a_thread(fn):  # type: ignore[no-untyped-def]
    """``fn()`` run as the service's run slots run jobs: on a thread; its result."""
    outcome: dict[str, object] = {}

    def slot() -> None:
        outcome["method"] = start_method()
        outcome["result"] = fn()

    thread = threading.Thread(target=slot, name="batchscore-slot-test")
    thread.start()
    thread.join()
    return outcome


def _spec(script: Path, retries: int = 1) -> object:
    return spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 1,
                              "retry_settings": {"max_retries": retries, "timeout": 60}})


@pytest.mark.timeout(300)
def test_workers_started_beside_other_threads_do_not_inherit_their_locks(
        ws: Workspace, tmp_path: Path, script, files, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "held_lock_module.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.delitem(sys.modules, "held_lock_module", raising=False)
    import held_lock_module  # type: ignore[import-not-found]

    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # another thread of the process holds the lock during the job
        with held_lock_module.LOCK:
            holding.set()
            release.wait()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    holding.wait()
    monkeypatch.setenv("BATCHSCORE_INIT_TIMEOUT", "120")  # only a safety net if it breaks
    spec, inputs = _spec(script(TAKES_THE_LOCK)), [str(files(3))]
    try:
        outcome = _on_a_thread(lambda: run_job(ws, spec, inputs, str(tmp_path / "out"),
                                               executor="local"))
    finally:
        release.set()
        thread.join()
    assert outcome["method"] == "forkserver"
    job = outcome["result"]
    assert job.state == "succeeded", job.reason  # type: ignore[attr-defined]
    assert start_method() == "fork"  # the command line (the main thread) still forks


@pytest.mark.timeout(300)
def test_a_worker_start_up_that_never_ends_fails_the_run(
        ws: Workspace, tmp_path: Path, script, files, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run ends (its slot is free): each try counts an attempt, then the job fails; the
    hung workers of each try are stopped (they were left hanging, for good in the service)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PIDS", str(pids))
    monkeypatch.setenv("BATCHSCORE_INIT_TIMEOUT", "2")
    assert init_seconds() == 2
    spec = _spec(script(HANGS), retries=3)
    job = run_job(ws, spec, [str(files(2))], str(tmp_path / "out"), executor="local")
    assert job.state == "failed", job.reason
    assert "init()" in (job.reason or "") and "did not finish" in (job.reason or "")
    events = job_logs(ws, job.id).events
    assert any(e.get("event") == "retry" and e.get("outcome") == "timeout" for e in events), \
        events
    assert get_job(ws, job.id).finished
    hung = [int(p.name) for p in pids.iterdir()]
    assert len(hung) >= 2, hung  # a worker per try
    wait_for(lambda: not any(map(_running, hung)), timeout=60,
             what=f"the end of the hung workers {hung}")


@pytest.mark.timeout(300)
def test_a_hung_start_up_in_the_service_frees_its_run_slot(
        ws: Workspace, tmp_path: Path, script, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the service: the run slot's job spawns its workers, their init() hangs, the
    run ends failed, and the slot takes the next run."""
    from batchscore.endpoints import create_endpoint
    from batchscore.pipelines import get_run
    from batchscore.service import ServiceConfig, create_app, create_token
    from service.svc_helpers import TestClient, wait_for

    monkeypatch.setenv("BATCHSCORE_INIT_TIMEOUT", "3")
    create_endpoint(ws, "hangs", spec_from_mapping({
        "name": "hangs", "scoring_script": str(script(HANGS)), "mini_batch_size": 1,
        "max_concurrency_per_instance": 1, "retry_settings": {"max_retries": 1}}))
    ws.data.local_path("in").mkdir(parents=True)
    (ws.data.local_path("in") / "a.txt").write_text("a\n")
    operator = {"Authorization": f"Bearer {create_token(ws.engine, 'o', 'operator')[1]}"}
    with TestClient(create_app(ws, ServiceConfig(run_slots=1))) as client:
        runs = []
        for i in range(2):  # the second waits for the only slot
            answer = client.post("/api/v1/endpoints/hangs/invoke", headers=operator,
                                 json={"inputs": ["in/a.txt"], "output": f"out{i}/"})
            assert answer.status_code == 202, answer.text
            runs.append(answer.json()["run_id"])
        done = [wait_for(lambda r=r: (x := get_run(ws.engine, r)).finished and x, timeout=240)
                for r in runs]
    assert len({r.id for r in done}) == 2
    assert [r.state for r in done] == ["failed", "failed"], [r.reason for r in done]
    assert all("did not finish" in (r.reason or "") for r in done)


@pytest.mark.timeout(300)
def test_workers_of_a_job_run_on_a_thread_come_from_the_fork_server(
        ws: Workspace, tmp_path: Path, script, files, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forked by the fork server, not by this process; the server imported the kinds'
    modules once (a script job's worker finds the tabular kind's module loaded without
    importing it), the command line's (the service's main module imports it) and what the
    first table through pyarrow and scikit-learn imports; the worker has this process's
    environment as it is when the job starts, not the one the server started with."""
    start_worker_server()
    monkeypatch.setenv("BATCHSCORE_TEST_MARK", "set after the server started")
    spec, inputs = _spec(script(WHO_STARTED_ME)), [str(files(2))]
    outcome = _on_a_thread(lambda: run_job(ws, spec, inputs, str(tmp_path / "out"),
                                           executor="local"))
    assert outcome["method"] == "forkserver"
    job = outcome["result"]
    assert job.state == "succeeded", job.reason  # type: ignore[attr-defined]
    seen = [json.loads(line) for line in
            (tmp_path / "out/predictions.csv").read_text().splitlines()]
    assert len(seen) == 2
    for worker in seen:
        assert worker["parent"] != os.getpid()
        assert worker["mark"] == "set after the server started"
        assert worker["preloaded"] is True
        assert {"batchscore.cli", "pyarrow.pandas_compat"} <= set(worker["warm"])
        if importlib.util.find_spec("narwhals.stable.v2") is not None:  # scikit-learn 1.7+
            assert "narwhals._pandas_like.dataframe" in worker["warm"]


@pytest.mark.parametrize(("executor", "started"), [("local", 1), ("ray", 0)])
def test_the_service_starts_the_fork_server_when_its_jobs_use_local_workers(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch, executor: str, started: int) -> None:
    calls: list[None] = []
    monkeypatch.setattr(service_context, "start_worker_server", lambda: calls.append(None))
    object.__setattr__(ws.settings, "executor", executor)
    service = service_context.Service.open(ws, service_context.ServiceConfig())
    service.start()
    try:
        assert len(calls) == started
    finally:
        service.stop()


def test_a_service_with_a_bad_worker_setting_does_not_start(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused as the service is made (``batchscore serve`` says it and exits), not first
    when a run slot's job starts its workers."""
    monkeypatch.setenv("BATCHSCORE_WORKER_START", "thread")
    with pytest.raises(UsageError, match=r"\$BATCHSCORE_WORKER_START='thread'"):
        service_context.Service.open(ws, service_context.ServiceConfig())
    object.__setattr__(ws.settings, "executor", "ray")  # not read by Ray's workers
    service_context.Service.open(ws, service_context.ServiceConfig())


def test_a_module_the_fork_server_cannot_import_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server still starts (its workers import what they need themselves, and report
    the error): neither a missing module nor one that raises at import stops the others."""
    (tmp_path / "raises_at_import_xyz.py").write_text("raise RuntimeError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ["no_such_module_xyz", "raises_at_import_xyz", "json"]
    assert import_modules(names) == ["json"]


RUNS_A_JOB_ON_A_THREAD = """
import sys
import threading
from pathlib import Path

from batchscore import init_workspace
from batchscore.jobs import run_job, spec_from_mapping


def main():
    root, scoring_script, inputs = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    ws = init_workspace(root / "ws")
    spec = spec_from_mapping({"scoring_script": scoring_script, "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2})
    slot = threading.Thread(target=run_job, args=(ws, spec, [inputs], str(root / "out")))
    slot.start()
    slot.join()


if __name__ == "__main__":
    main()
"""

SAYS_ITS_PID_AND_BLOCKS = """
import os
import threading

def run(mini_batch):
    open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
    threading.Event().wait()  # never returns: it ends only when its process is ended
    return list(mini_batch)
"""


@pytest.mark.timeout(300)
def test_the_fork_servers_workers_end_with_their_runner(tmp_path: Path, script, files) -> None:
    """kill -9 of a process that runs a job on a thread: its workers, which the fork server
    forked (their parent is the server, which their own lives keep alive), exit in the middle
    of their mini-batch (one that never ends on its own)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    program = tmp_path / "program.py"
    program.write_text(RUNS_A_JOB_ON_A_THREAD)
    proc = subprocess.Popen(
        [sys.executable, str(program), str(tmp_path), str(script(SAYS_ITS_PID_AND_BLOCKS)),
         str(files(2))], env={**os.environ, "PIDS": str(pids)})
    try:  # the two workers' marks (or the program's end) are the event waited for
        wait_for(lambda: len(list(pids.iterdir())) >= 2 or proc.poll() is not None,
                 timeout=120, what="the two workers' marks")
        assert proc.poll() is None, "the program ended before its workers started"
    finally:
        proc.kill()
        proc.wait(30)
    workers = [int(p.name) for p in pids.iterdir()]
    try:
        wait_for(lambda: not any(map(pid_alive, workers)), timeout=60,
                 what=f"the end of workers {workers}, which outlived their runner")
    except AssertionError:
        for pid in workers:  # not left blocked for good
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise


EXITS_IN_INIT = """
import os
import signal

def init():
    if os.environ["HOW"] == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does to a model too big

def run(mini_batch):
    return list(mini_batch)
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("start", ["fork", "forkserver"])
@pytest.mark.parametrize(("how", "said"), [("exit", "exit code 3"), ("kill", "killed by SIGKILL")])
def test_workers_that_end_as_they_start_fail_the_job_with_their_exit(
        ws: Workspace, tmp_path: Path, script, files, monkeypatch: pytest.MonkeyPatch,
        start: str, how: str, said: str) -> None:
    """pebble replaces a worker that ends, and a pool whose workers all ended, without end:
    before, such a job started workers and pools and never ended."""
    monkeypatch.setenv("BATCHSCORE_WORKER_START", start)
    monkeypatch.setenv("HOW", how)
    spec = spec_from_mapping({"scoring_script": str(script(EXITS_IN_INIT)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 2})
    job = run_job(ws, spec, [str(files(4))], str(tmp_path / "out"), executor="local")
    assert job.state == "failed"
    assert "ended as they started" in (job.reason or "") and said in (job.reason or ""), \
        job.reason
    assert "__main__" not in (job.reason or "")  # this main module (pytest's) is guarded
    assert not (tmp_path / "out").exists()


UNGUARDED_PROGRAM = """
import sys
import threading
from pathlib import Path

from batchscore import init_workspace
from batchscore.jobs import run_job, spec_from_mapping

root, scoring_script, inputs = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ws = init_workspace(root / "ws")
spec = spec_from_mapping({"scoring_script": scoring_script, "mini_batch_size": 1,
                          "max_concurrency_per_instance": 2})
done = {}
slot = threading.Thread(target=lambda: done.update(
    job=run_job(ws, spec, [inputs], str(root / "out"))))
slot.start()
slot.join()
print("STATE", done["job"].state, done["job"].reason)
"""

ECHOES = """
import os

def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""


@pytest.mark.timeout(300)
def test_a_program_without_a_main_guard_gets_a_failed_job_that_says_so(
        tmp_path: Path, script, files) -> None:
    """Its workers (the fork server's) import the program first, which runs a job again in
    each: multiprocessing refuses it and they exit, forever (2,800 worker starts in 200 s
    before, and no end). The job fails at once, saying what to write."""
    program = tmp_path / "program.py"
    program.write_text(UNGUARDED_PROGRAM)
    done = subprocess.run(
        [sys.executable, str(program), str(tmp_path), str(script(ECHOES)), str(files(2))],
        capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("STATE")]
    assert line.startswith("STATE failed"), line
    assert "ended as they started" in line and "program.py" in line, line
    assert 'if __name__ == "__main__":' in line, line


SLOW_FIRST_TIME = """
import os
import threading

def run(mini_batch):
    name = os.path.basename(mini_batch[0])
    marks = os.environ["PIDS"]
    again = any(m.startswith(name + ".") for m in os.listdir(marks))
    open(os.path.join(marks, f"{name}.{os.getpid()}"), "w").close()
    if not again:
        threading.Event().wait()  # the first try of each: never returns, ended with its server
    return [name]
"""


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(300)
def test_a_fork_server_killed_alone_takes_its_workers_and_the_job_goes_on(
        ws: Workspace, tmp_path: Path, script, files, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OOM killer (or an operator) kills the fork server while its workers run: the
    runner reads their ends from the server and retries their mini-batches on workers of a
    new server; the old workers exit then too, instead of running their mini-batch on,
    unseen (to its end, up to the task timeout)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PIDS", str(pids))
    spec = spec_from_mapping({"scoring_script": str(script(SLOW_FIRST_TIME)),
                              "mini_batch_size": 1, "max_concurrency_per_instance": 2,
                              "retry_settings": {"max_retries": 2, "timeout": 600}})
    outcome: dict[str, object] = {}
    slot = threading.Thread(target=lambda: outcome.update(_on_a_thread(
        lambda: run_job(ws, spec, [str(files(2))], str(tmp_path / "out"), executor="local"))))
    slot.start()
    try:
        first = wait_for(lambda: len(marks := list(pids.iterdir())) >= 2 and marks,
                         timeout=120, what="the first tries of both mini-batches")
        workers = [int(m.name.rsplit(".", 1)[1]) for m in first]
        [server] = {psutil.Process(pid).ppid() for pid in workers}
        assert server != os.getpid()
        os.kill(server, signal.SIGKILL)
        wait_for(lambda: not any(map(_running, workers)), timeout=60,
                 what=f"the end of workers {workers} after their fork server's")
    finally:
        slot.join(240)
    assert outcome["method"] == "forkserver"
    job = outcome["result"]
    assert job.state == "succeeded", job.reason  # type: ignore[attr-defined]
    assert (tmp_path / "out/predictions.csv").read_text().split() == ["f000.txt", "f001.txt"]
    retried = [e for e in job_logs(ws, job.id).events if e.get("event") == "retry"]  # type: ignore[attr-defined]
    assert len(retried) == 2 and all(e.get("outcome") == "died" for e in retried), retried
