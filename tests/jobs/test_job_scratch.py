"""A job leaves no scratch behind. Copies of remote input files go once their mini-batch has
run; the run's scratch folder (the workers' copies of models and code, their own folders) once
its workers have stopped, also a worker's that was killed; a later run removes the scratch of
a run that was killed; nothing is left in the machine's temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from batchscore import paths
from batchscore.jobs import resume_job, run_job, submit_job
from batchscore.jobs.logs import JobLogs
from batchscore.jobs.spec import spec_from_mapping
from batchscore.storage import Store
from batchscore.workspace import Workspace, open_workspace
from helpers import left_in_tmp


def leftovers(ws: Workspace, job_id: str, machine_tmp: Path) -> list[str]:
    """What the job left in its scratch and the machine's temporary folder."""
    left = left_in_tmp(machine_tmp)
    scratch = ws.system.local_path(paths.job_dir(job_id)) / "scratch"
    return left + ([str(p) for p in scratch.iterdir()] if scratch.exists() else [])


SEES = """
import os
def run(mini_batch):
    return [f"{p} {os.path.exists(p)}" for p in mini_batch]
"""


def test_copies_of_remote_inputs_go_once_their_mini_batch_has_run(ws, executor, script,
                                                                   files, machine_tmp, tmp_path):
    inputs = files(4)
    spec = spec_from_mapping({"scoring_script": str(script(SEES)), "mini_batch_size": 2})
    # local:// is a store URL that is not file://: workers copy its files, as from az:// or s3://
    job = run_job(ws, spec, [f"local://{inputs}/*.txt"], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    seen = [line.split() for line in (tmp_path / "out/predictions.csv").read_text().split("\n")
            if line]
    scratch = ws.system.local_path(paths.job_dir(job.id)) / "scratch"
    assert len(seen) == 4 and all(there == "True" for _, there in seen)
    assert all(Path(copy).is_relative_to(scratch) for copy, _ in seen)  # copies were made
    assert not any(Path(copy).exists() for copy, _ in seen)
    assert leftovers(ws, job.id, machine_tmp) == []


def test_a_killed_workers_copies_go_with_the_run(ws, script, files, machine_tmp, tmp_path):
    marker = tmp_path / "died-once"
    dies = script(f"""
        import os
        def run(mini_batch):
            if not os.path.exists({str(marker)!r}):
                open({str(marker)!r}, "w").close()
                os._exit(3)  # the worker dies holding its mini-batch's copies
            return [os.path.basename(p) for p in mini_batch]
    """)
    spec = spec_from_mapping({"scoring_script": str(dies), "mini_batch_size": 2})
    job = run_job(ws, spec, [f"local://{files(2)}/*.txt"], str(tmp_path / "out"))
    assert job.state == "succeeded" and marker.exists(), job.reason
    assert leftovers(ws, job.id, machine_tmp) == []


def test_a_later_run_removes_the_scratch_of_a_killed_run(ws, script, files, machine_tmp, tmp_path):
    spec = spec_from_mapping({"scoring_script": str(script(SEES))})
    job, _ = submit_job(ws, spec, [f"local://{files(1)}/*.txt"], str(tmp_path / "out"))
    killed = ws.system.local_path(paths.job_dir(job.id)) / "scratch" / "run-killed"
    (killed / "inputs").mkdir(parents=True)  # as a runner killed with SIGKILL leaves it
    (killed / "inputs" / "big.bin").write_bytes(b"x" * 1024)
    assert resume_job(ws, job.id).state == "succeeded"
    assert not killed.exists()
    assert leftovers(ws, job.id, machine_tmp) == []


def test_a_failed_job_leaves_no_scratch(ws, script, files, machine_tmp, tmp_path):
    fails = script("def run(mini_batch):\n    raise ValueError('no')\n")
    spec = spec_from_mapping({"scoring_script": str(fails), "error_threshold": 0,
                              "retry_settings": {"max_retries": 0, "timeout": 30}})
    job = run_job(ws, spec, [f"local://{files(2)}/*.txt"], str(tmp_path / "out"))
    assert job.state == "failed"
    assert leftovers(ws, job.id, machine_tmp) == []


def test_a_remote_system_stores_log_copies_go_when_the_logs_are_closed(machine_tmp):
    """With a system store that is not a local folder, a job's logs are appended to a local
    copy and uploaded on flush; closing them (the runner does at the end of each run) leaves
    them in the store only, and the next run's logs carry on from them."""
    system = Store(f"memory://logs-{os.getpid()}/system", "system")
    try:
        logs = JobLogs(system, "job-x")
        logs.event("first")
        assert logs.folder.is_relative_to(machine_tmp)
        logs.close()
        assert left_in_tmp(machine_tmp) == []
        again = JobLogs(system, "job-x")
        again.event("second")
        again.close()
        events = system.read_text(f"{paths.job_logs('job-x')}/{paths.EVENTS}").splitlines()
        assert [json.loads(line)["event"] for line in events] == ["first", "second"]
        assert left_in_tmp(machine_tmp) == []
    finally:
        system.remove("", recursive=True)


def test_a_job_with_a_remote_system_store_leaves_nothing_on_this_machine(
        ws, script, files, machine_tmp, tmp_path, azure_env, monkeypatch):
    """The system store in Azure Blob (the emulator): the job's logs, the workers' logs and the
    files the script stages are uploaded; this machine's copies of them go when the job ends."""
    from azure.storage.blob import BlobServiceClient

    container = f"system-{os.getpid()}"
    service = BlobServiceClient.from_connection_string(azure_env)
    service.create_container(container)
    monkeypatch.setenv("BATCHSCORE_SYSTEM_STORE", f"az://{container}")
    remote = open_workspace(ws.settings.root)
    stages = script("""
        import os
        def run(mini_batch):
            for p in mini_batch:
                with open(os.path.join(os.environ["AZUREML_BI_OUTPUT_PATH"],
                                       os.path.basename(p) + ".seen"), "w") as fh:
                    fh.write("seen")
                print("scored", p)
            return [os.path.basename(p) for p in mini_batch]
    """)
    try:
        assert not remote.system.is_local
        spec = spec_from_mapping({"scoring_script": str(stages), "mini_batch_size": 1})
        job = run_job(remote, spec, [str(files(2))], str(tmp_path / "out"))
        assert job.state == "succeeded", job.reason
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
            ".batchscore-job.json", "f000.txt.seen", "f001.txt.seen", "predictions.csv"]
        assert left_in_tmp(machine_tmp) == []
        logs = paths.job_logs(job.id)
        assert remote.system.exists(logs, paths.EVENTS)
        worker_logs = remote.system.list(paths.workers_dir(logs))
        assert any("scored" in remote.system.read_text(p) for p in worker_logs
                   if p.endswith(".stdout.txt"))
    finally:
        remote.close()
        service.delete_container(container)
