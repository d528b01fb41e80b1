"""A workspace shared by a module's tests (an MLflow registry takes seconds to create)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from batchscore.cli import app
from batchscore.workspace import Workspace, init_workspace

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"


@pytest.fixture(autouse=True)
def _no_remote_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def mws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = init_workspace(tmp_path_factory.mktemp("mlops") / "ws")
    yield workspace
    workspace.close()


@pytest.fixture
def cli(mws: Workspace):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def call(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"BATCHSCORE_WORKSPACE": str(mws.settings.root)})

    return call
