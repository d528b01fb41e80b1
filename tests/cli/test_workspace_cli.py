"""``batchscore init``."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from batchscore.cli import app


def test_init_creates_then_reopens(tmp_path):
    root = tmp_path / "ws"
    runner = CliRunner()
    result = runner.invoke(app, ["init", "-w", str(root)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"workspace {root}\n"
                             f"  database sqlite:///{root}/state.db\n"
                             f"  data     file://{root}/data\n"
                             f"  system   file://{root}/system\n")
    cfg = (root / "batchscore.toml").read_bytes()
    again = runner.invoke(app, ["init", "-w", str(root)])
    assert (again.exit_code, again.stdout) == (0, result.stdout)
    assert (root / "batchscore.toml").read_bytes() == cfg


def test_init_with_stores(tmp_path):
    root = tmp_path / "ws"
    result = CliRunner().invoke(app, ["init", "-w", str(root), "--data-store",
                                      str(tmp_path / "d"), "--system-store", "memory://bs-sys"])
    assert result.exit_code == 0, result.output
    assert f"  data     file://{tmp_path / 'd'}\n" in result.stdout
    assert "  system   memory://bs-sys\n" in result.stdout



def _at_exit(args: list[str], code: int) -> dict[str, object]:
    """``batchscore ARGS`` in a fresh interpreter (the console script's ``main``): what its
    last atexit handler sees."""
    probe = ("import atexit, gc, json, sys\n"
             "atexit.register(lambda: print(json.dumps({'frozen': gc.get_freeze_count() > 0, "
             "'loaded': sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules)"
             "})))\n"
             "from batchscore.cli import main\n"
             f"sys.argv = ['batchscore', *{args!r}]\n"
             "main()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout.rstrip().splitlines()[-1])


def test_a_command_leaves_its_objects_to_the_exit_uncollected(tmp_path):
    """The interpreter's exit collects every object the imports made (0.3-0.45 s of each
    command here): the console script freezes them first, whatever the command's outcome,
    and its atexit handlers still run."""
    root = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", "-w", str(root)]).exit_code == 0
    assert _at_exit(["job", "list", "-w", str(root)], 0)["frozen"] is True
    assert _at_exit(["job", "show", "job-nope", "-w", str(root)], 2)["frozen"] is True


def test_commands_that_read_no_data_do_not_import_pandas(tmp_path):
    """pandas, pyarrow and NumPy are imported where rows are planned or read: listing jobs or
    endpoints, or asking for help, does not pay for them (0.9 s of `job list`'s 1.65 s)."""
    root = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", "-w", str(root)]).exit_code == 0
    for args in (["job", "list", "-w", str(root)], ["endpoint", "list", "-w", str(root)],
                 ["job", "run", "--help"]):
        assert _at_exit(args, 0)["loaded"] == [], args


SEES_LOADED = """
import sys

LOADED = sorted(m for m in ("pandas", "pyarrow") if m in sys.modules)  # before any import

def run(mini_batch):
    return [" ".join(LOADED) or "none" for _ in mini_batch]
"""


def test_a_jobs_forked_workers_still_inherit_pandas(tmp_path, files):
    """The command line loads pandas and pyarrow before it forks a job's workers, so that a
    scoring script that imports them (most do) does not import them in every worker."""
    root = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", "-w", str(root)]).exit_code == 0
    script = tmp_path / "score.py"
    script.write_text(SEES_LOADED)
    done = subprocess.run(
        [sys.executable, "-m", "batchscore", "job", "run", "--scoring-script", str(script),
         "-i", str(files(2)), "-o", str(tmp_path / "out"), "--mini-batch-size", "1",
         "--no-progress", "-w", str(root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert rows == ["pandas pyarrow", "pandas pyarrow"]
