"""The CLI in-process: ``invoke`` runs ``batchscore ARGS`` against the ``ws`` workspace."""

from __future__ import annotations

import pytest
from cli_checks import Invoke
from typer.testing import CliRunner, Result

from batchscore.cli import app
from batchscore.workspace import Workspace


@pytest.fixture
def invoke(ws: Workspace) -> Invoke:
    runner = CliRunner()

    def call(*args: str, workspace: str | None = None) -> Result:
        env = {"BATCHSCORE_WORKSPACE": workspace or str(ws.settings.root)}
        return runner.invoke(app, list(args), env=env)

    return call
