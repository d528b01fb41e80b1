"""``batchscore init``."""

from __future__ import annotations

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
