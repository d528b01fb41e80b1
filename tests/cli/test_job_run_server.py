"""`batchscore job run --server URL`: the script travels to the service, the job runs there
over data-store paths, and the command follows it (``--wait``) or returns at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_checks import Invoke, assert_one_error

from batchscore.jobs import bundle as bundles
from batchscore.jobs import list_jobs
from batchscore.workspace import Workspace
from servers import free_port

SCORE = """\
import os
from helpers import double

def run(mini_batch):
    return [f"{os.path.basename(p)} {double(int(open(p).read()))}" for p in mini_batch]
"""
FAILING = """\
def run(mini_batch):
    raise ValueError("this script fails")
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "batchscore", *args], capture_output=True,
                          text=True, cwd=cwd, env={**env, "BATCHSCORE_WORKSPACE": "/nonexistent"})


def code_folder(tmp_path: Path, source: str = SCORE) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "score.py").write_text(source)
    (code / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    return code


def test_job_run_through_the_service(ws: Workspace, service: str, tmp_path: Path) -> None:
    for i in range(3):
        ws.data.write_text(f"incoming/nums/n{i}.txt", f"{i + 1}\n")
    code = code_folder(tmp_path)

    def job_run(output: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli("job", "run", "--code", str(code), "--scoring-script", "score.py",
                   "-i", "incoming/nums", "-o", output, "--mini-batch-size", "2",
                   "--server", service, *extra, cwd=tmp_path)

    done = job_run("scored/nums", "--wait", "--no-progress")
    assert done.returncode == 0, done.stderr
    job = list_jobs(ws)[0]
    assert f"job {job.id} queued on {service}: 2 mini-batches, 3 items" in done.stdout
    assert f"job {job.id} succeeded: 3/3 items" in done.stdout
    assert done.stdout.rstrip().endswith("output: scored/nums")
    assert ws.data.read_text("scored/nums/predictions.csv").splitlines() == [
        "n0.txt 2", "n1.txt 4", "n2.txt 6"]
    assert job.spec["code"].startswith(str(ws.system.local_path("scripts")))

    shown = cli("job", "show", job.id, "--server", service, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "output_url: scored/nums" in shown.stdout
    assert "file://" not in shown.stdout and str(ws.settings.root) not in shown.stdout

    # the same command again: the finished output is not replaced
    again = job_run("scored/nums")
    assert again.returncode == 2
    assert "scored/nums already holds a finished output" in again.stderr
    assert str(ws.settings.root) not in again.stderr and "Traceback" not in again.stderr

    # without --wait the id comes back at once; a failing job fails the waiting command
    code_folder(tmp_path, FAILING)
    queued = job_run("scored/queued")
    assert queued.returncode == 0, queued.stderr
    assert "follow it with: batchscore job show job-" in queued.stdout
    failed = job_run("scored/failing", "--error-threshold", "0", "--max-retries", "0",
                     "--wait", "--no-progress")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert " failed: 0/3 items" in failed.stdout
    assert not ws.data.exists("scored/failing", "predictions.csv")


def test_unreachable_service_is_a_clear_error(tmp_path: Path) -> None:
    code = code_folder(tmp_path)
    result = cli("job", "run", "--code", str(code), "--scoring-script", "score.py",
                 "-i", "incoming/nums", "-o", "scored", "--server",
                 f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot reach the service at" in result.stderr and "Traceback" not in result.stderr


def test_local_paths_and_local_only_options_are_refused(invoke: Invoke, tmp_path: Path
                                                        ) -> None:
    code = code_folder(tmp_path)
    server = f"http://127.0.0.1:{free_port()}"  # never reached: refused before
    base = ["job", "run", "--code", str(code), "--scoring-script", "score.py", "--server",
            server]
    assert_one_error(invoke(*base, "-i", str(tmp_path), "-o", "scored"),
                     f"--input {str(tmp_path)!r} is a path on this machine",
                     "api/v1/data/incoming/FILE")
    assert_one_error(invoke(*base, "-i", "incoming/x", "-o", "file:///tmp/out"),
                     "--output 'file:///tmp/out' is a path on this machine")
    assert_one_error(invoke(*base, "-i", "incoming/x", "-o", "scored", "--executor", "ray"),
                     "--executor and --ray-address cannot be used with --server")
    assert_one_error(invoke("job", "run", "--scoring-script", str(tmp_path / "nope.py"),
                            "-i", "incoming/x", "-o", "scored", "--server", server),
                     "nope.py' does not exist")
    assert_one_error(invoke(*base, "-i", "incoming/x", "-o", "scored", "--model-dir",
                            "s3://models/m"),
                     "model folder 's3://models/m' is a URL")


def test_an_oversize_bundle_is_refused_before_sending(invoke: Invoke, tmp_path: Path,
                                                      monkeypatch) -> None:
    code = code_folder(tmp_path)
    (code / "weights.bin").write_bytes(os.urandom(8192))
    monkeypatch.setattr(bundles, "MAX_BUNDLE_BYTES", 4096)
    result = invoke("job", "run", "--code", str(code), "--scoring-script", "score.py",
                    "-i", "incoming/x", "-o", "scored", "--server",
                    f"http://127.0.0.1:{free_port()}")
    assert_one_error(result, "more than the limit of 4096 bytes")
