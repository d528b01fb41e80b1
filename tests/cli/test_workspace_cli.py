"""``batchscore init``."""

from __future__ import annotations

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


def test_a_command_leaves_its_objects_to_the_exit_uncollected(tmp_path):
    """The interpreter's exit collects every object the imports made (0.3-0.45 s of each
    command here): the console script freezes them first, whatever the command's outcome,
    and its atexit handlers still run."""
    root = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", "-w", str(root)]).exit_code == 0
    for args, code in ((["job", "list", "-w", str(root)], 0),
                       (["job", "show", "job-nope", "-w", str(root)], 2)):
        probe = ("import atexit, gc, sys\n"
                 "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
                 "from batchscore.cli import main\n"
                 f"sys.argv = ['batchscore', *{args!r}]\n"
                 "main()\n")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == code, done.stderr
        assert done.stdout.rstrip().endswith("frozen at exit: True"), done.stdout
