"""Fixtures of the Azure layout tests: ``layout`` (a copy of a deployment folder with its
model made) and ``cli`` (batchscore run in a folder against the test's workspace)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from azureml.az_helpers import HERE, save_mlflow, save_pickle
from batchscore.cli import app
from batchscore.workspace import Workspace


@pytest.fixture
def layout(tmp_path: Path) -> Callable[[str], Path]:
    """``layout("heart-mlflow")``: a copy of that folder with its model/ made."""

    def make(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(HERE / name, root)
        if name == "heart-mlflow":
            save_mlflow(root / "model")
        elif name in ("heart-custom", "parallel-heart"):
            save_pickle(root / "model")
        return root

    return make


@pytest.fixture
def cli(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``cli(cwd, *args)``: batchscore ARGS run in folder ``cwd`` against the workspace."""
    runner = CliRunner()

    def call(cwd: Path, *args: str) -> Result:
        monkeypatch.chdir(cwd)
        return runner.invoke(app, list(args),
                             env={"BATCHSCORE_WORKSPACE": str(ws.settings.root)})

    return call
