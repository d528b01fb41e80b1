"""A workspace of each test's own, with an MLflow registry ready to use.

Creating MLflow's database (its Alembic migrations) takes seconds; it is done once per
session, into an empty template registry that every test's workspace gets a copy of. No test
shares a workspace, a registry or a deployment with another, so any order works."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from batchscore.cli import app
from batchscore.registry.models import client
from batchscore.workspace import Workspace, init_workspace

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"


@pytest.fixture(autouse=True)
def _no_remote_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``mlflow.db`` with MLflow's tables and no experiment of batchscore's (each test
    copies it; none writes it). Experiments are created with the workspace's own artifact
    location, so nothing in the copy points back at the template."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        template = init_workspace(tmp_path_factory.mktemp("registry") / "ws")
        try:
            assert [e.name for e in client(template).search_experiments()] == ["Default"]
        finally:
            template.close()
    assert sorted(p.name for p in template.settings.root.glob("mlflow.db*")) == ["mlflow.db"]
    return template.settings.root / "mlflow.db"


@pytest.fixture
def mws(tmp_path: Path, empty_registry: Path) -> Iterator[Workspace]:
    workspace = init_workspace(tmp_path / "mlops-ws")
    shutil.copyfile(empty_registry, workspace.settings.root / "mlflow.db")
    yield workspace
    workspace.close()


@pytest.fixture
def cli(mws: Workspace):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def call(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"BATCHSCORE_WORKSPACE": str(mws.settings.root)})

    return call
