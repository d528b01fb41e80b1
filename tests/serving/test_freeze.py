"""A serving process freezes what it has made before it serves (``gc.freeze``): the
collector's full passes then skip the libraries and the model, which a large request's
allocations used to make it walk (about 50 ms a pass, in the middle of a request)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import uvicorn
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import batchscore.serving.app as app_module
import batchscore.serving.child as child
from batchscore.cli import app
from batchscore.workspace import Workspace


def test_what_exists_is_frozen_and_what_comes_later_is_still_collected() -> None:
    # in a process of its own: frozen objects are never collected, not for a test run
    code = textwrap.dedent("""
        import gc, weakref
        from batchscore.serving.app import freeze_startup_heap

        class Node:
            pass

        kept = [Node() for _ in range(1000)]
        freeze_startup_heap()
        assert gc.get_freeze_count() >= 1000, gc.get_freeze_count()
        later = Node()
        later.self = later  # a cycle made after the freeze
        alive = weakref.ref(later)
        del later
        gc.collect()
        assert alive() is None, "a cycle made after the freeze was not collected"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    model = LinearRegression().fit(x, [1.0, 2.0, 3.0])
    folder = tmp_path / "model"
    mlflow.sklearn.save_model(model, folder,  # type: ignore[attr-defined]
                              signature=infer_signature(x, model.predict(x)))
    return folder


def _record(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(app_module, "freeze_startup_heap", lambda: calls.append("freeze"))
    return calls


def test_model_serve_freezes_after_loading_and_before_serving(
        ws: Workspace, model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append("serve"))
    result = CliRunner().invoke(app, ["model", "serve", "--model-dir", str(model_folder),
                                      "--no-log"],
                                env={"BATCHSCORE_WORKSPACE": str(ws.settings.root)})
    assert result.exit_code == 0, result.output
    assert calls == ["freeze", "serve"]


def test_a_deployment_child_freezes_after_loading_and_before_serving(
        model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch)

    class Server:
        server_state = type("State", (), {"total_requests": 0})()
        should_exit = False

        def run(self, sockets: Any) -> None:
            calls.append("serve")

    monkeypatch.setattr(child, "_draining_server", lambda config, graceful: Server())
    child.serve_on([], model_dir=str(model_folder), log_requests=False)
    assert calls == ["freeze", "serve"]
