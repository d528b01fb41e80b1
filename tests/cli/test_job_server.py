"""`batchscore job list|show|logs|cancel --server URL` act through a running service."""

from __future__ import annotations

import os
import subprocess
import sys

from batchscore.jobs import run_job, spec_from_mapping, submit_job
from servers import free_port


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "batchscore", *args], capture_output=True,
                          text=True, env={**env, "BATCHSCORE_WORKSPACE": "/nonexistent"})


def test_job_commands_through_the_service(ws, service, tmp_path, files):
    script = tmp_path / "score.py"
    script.write_text("def run(mb):\n    if mb[0].endswith('f001.txt'):\n"
                      "        raise ValueError('bad file')\n    return mb\n")
    spec = spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 1,
                              "retry_settings": {"max_retries": 0, "timeout": 30}})
    done = run_job(ws, spec, [str(files(3))], str(tmp_path / "out"))
    queued, _ = submit_job(ws, spec, [str(files(3))], str(tmp_path / "out2"))

    listed = cli("job", "list", "--server", service, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {done.id, queued.id} <= set(listed.stdout.replace('"', " ").split())
    shown = cli("job", "show", done.id, "--server", service)
    assert shown.returncode == 0 and "mini-batch 1 failed after 1 attempt(s)" in shown.stdout
    errors = cli("job", "logs", done.id, "--errors", "--server", service)
    assert "ValueError: bad file" in errors.stdout
    canceled = cli("job", "cancel", queued.id, "--server", service)
    assert canceled.returncode == 0 and f"job {queued.id} canceled" in canceled.stdout
    missing = cli("job", "show", "job-nope", "--server", service)
    assert missing.returncode == 2 and "the service answered 404" in missing.stderr


def test_unreachable_service_is_a_clear_error():
    result = cli("job", "list", "--server", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "cannot reach the service at" in result.stderr and "Traceback" not in result.stderr
