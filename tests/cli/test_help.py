"""Every command's help has a one-line summary and an ``Example:`` block that runs it.

The commands are found by walking the click command tree, so a new command without help
fails here."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from batchscore.cli import app

ROOT = typer.main.get_command(app)


def walk(command, path):  # type: ignore[no-untyped-def]
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])


COMMANDS = {" ".join(path): cmd for path, cmd in walk(ROOT, ["batchscore"])}


def test_the_tree_is_walked():
    assert {"batchscore", "batchscore init", "batchscore job", "batchscore job run",
            "batchscore job list", "batchscore job show", "batchscore job logs",
            "batchscore job cancel", "batchscore job resume"} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS)
def test_help_has_summary_line_and_example(path):
    text = inspect.cleandoc(COMMANDS[path].help or "")
    lines = text.splitlines()
    assert lines and lines[0].strip(), f"{path}: no help"
    summary = lines[0]
    assert summary.endswith(".") and (len(lines) == 1 or not lines[1].strip()), (
        f"{path}: the summary must be one line, then a blank line")
    assert "Example:" in lines, f"{path}: no Example: block"
    example = lines[lines.index("Example:") + 1 :]
    runs = [line.strip() for line in example if line.strip().startswith("batchscore")]
    assert runs, f"{path}: the Example: block has no command"
    assert all(run.startswith(path) for run in runs if path != "batchscore"), (
        f"{path}: its examples run another command: {runs}")


@pytest.mark.parametrize("path", COMMANDS)
def test_help_option_prints_summary_and_example(path):
    result = CliRunner().invoke(app, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    summary = inspect.cleandoc(COMMANDS[path].help or "").splitlines()[0]
    flat = " ".join(result.stdout.split())
    assert " ".join(summary.split()) in flat
    assert "Example:" in flat and "Traceback" not in flat
