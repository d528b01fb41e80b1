"""The local executor's stall watchdog: a worker killed while it holds the pool's channel
lock leaves the other workers unable to take tasks (and per-task timeouts never fire for
tasks that never started); the pool is replaced and the job finishes."""

from __future__ import annotations

import pytest

from batchscore.errors import UsageError
from batchscore.jobs import job_logs, list_jobs, resume_job, run_job, spec_from_mapping
from batchscore.jobs.executors.local import stall_seconds

LOCK_AND_DIE = """
import gc, os, pathlib

def run(mini_batch):
    mark = pathlib.Path(os.environ["MARKS"]) / "locked"
    if os.path.basename(mini_batch[0]) == "f001.txt" and not mark.exists():
        mark.write_text("")
        channels = [o for o in gc.get_objects() if type(o).__name__ == "WorkerChannel"]
        assert channels, "no pebble WorkerChannel in this worker"
        # A forked worker also holds the channels of pools that earlier tests made in the
        # parent (an earlier pool's lock may be held for ever by its dead worker): try each
        # briefly, so that the pool's own channel, whose lock frees within a task, is taken
        for channel in channels:
            if not channel.reader.closed:
                channel.mutex.reader_mutex.acquire(True, 1)  # held by a process about to die
        os._exit(9)
    return [os.path.basename(p) for p in mini_batch]
"""


def test_a_pool_stalled_by_a_dead_lock_holder_is_replaced(ws, tmp_path, script, files, marks,
                                                         monkeypatch):
    monkeypatch.setenv("BATCHSCORE_STALL_SECONDS", "3")
    spec = spec_from_mapping({"scoring_script": str(script(LOCK_AND_DIE)),
                              "mini_batch_size": 1, "max_concurrency_per_instance": 2,
                              "retry_settings": {"max_retries": 2, "timeout": 60}})
    job = run_job(ws, spec, [str(files(6))], str(tmp_path / "out"), executor="local")
    assert job.state == "succeeded", job.reason
    lines = (tmp_path / "out" / "predictions.csv").read_text().split()
    assert lines == [f"f{i:03d}.txt" for i in range(6)]
    events = job_logs(ws, job.id).events
    assert any(e.get("event") == "requeued" and "stalled" in str(e.get("reason"))
               for e in events), events


def test_stall_limits():
    assert stall_seconds(30, started_any=True) == 120
    assert stall_seconds(300, started_any=True) == 600
    assert stall_seconds(30, started_any=False) == 1800  # workers may still be in init()


def test_the_environment_sets_the_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BATCHSCORE_STALL_SECONDS", "7")
    assert stall_seconds(30, started_any=False) == 7


ECHO = """
import os

def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""


@pytest.mark.parametrize(("name", "value"), [
    ("BATCHSCORE_WORKER_START", "forkk"), ("BATCHSCORE_WORKER_START", "thread"),
    ("BATCHSCORE_STALL_SECONDS", "soon"), ("BATCHSCORE_STALL_SECONDS", "-1"),
    ("BATCHSCORE_INIT_TIMEOUT", "nan"), ("BATCHSCORE_INIT_TIMEOUT", "0"),
    ("BATCHSCORE_INIT_TIMEOUT", "inf")])
def test_a_bad_worker_setting_is_refused_before_any_worker_starts(
        ws, tmp_path, script, files, monkeypatch, name: str, value: str) -> None:
    """Named with its value, before a worker starts; the job stays resumable and runs once
    the setting is mended (a bad value was used silently, or raised from deep inside)."""
    monkeypatch.setenv(name, value)
    spec = spec_from_mapping({"scoring_script": str(script(ECHO)), "mini_batch_size": 1})
    with pytest.raises(UsageError, match=rf"\${name}='{value}': expected"):
        run_job(ws, spec, [str(files(2))], str(tmp_path / "out"), executor="local")
    assert not (tmp_path / "out").exists()
    [job] = list_jobs(ws)
    assert not job.finished, job.state
    monkeypatch.delenv(name)
    job = resume_job(ws, job.id, executor="local")
    assert job.state == "succeeded", job.reason
    assert (tmp_path / "out" / "predictions.csv").read_text().split() == ["f000.txt", "f001.txt"]
