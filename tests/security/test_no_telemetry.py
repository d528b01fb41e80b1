"""batchscore sends nothing home: importing it turns off the usage telemetry of ONNX Runtime
(which writes a device identifier and a session file, then uploads, unless told not to before
it starts) and of MLflow, unless the user chose otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# what would tell MLflow or ONNX Runtime that they run under a test or CI (they then send
# nothing of themselves): the child runs as a user's program would
_NOT_A_USER = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "ORT_DISABLE_TELEMETRY",
               "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")

PROGRAM = """
import json, os, batchscore, onnxruntime
from mlflow.telemetry.utils import is_telemetry_disabled
print(json.dumps({"mlflow_off": is_telemetry_disabled(),
                  "ort": os.environ.get("ORT_DISABLE_TELEMETRY")}))
"""


def _run(tmp_path: Path, **env: str) -> dict[str, object]:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    child = {k: v for k, v in os.environ.items() if k not in _NOT_A_USER and
             not k.startswith("MLFLOW_")}
    child.update(HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"), **env)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=child, capture_output=True,
                         text=True, timeout=300, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_batchscore_turns_the_libraries_telemetry_off(tmp_path):
    pytest.importorskip("mlflow.telemetry.utils")  # MLflow releases without telemetry
    seen = _run(tmp_path)
    assert seen == {"mlflow_off": True, "ort": "1"}
    assert not (tmp_path / "tmp" / ".ses").exists()  # ONNX Runtime's telemetry session
    assert not (tmp_path / "home" / ".cache" / "Microsoft").exists()  # its device identifier


def test_a_users_choice_is_kept(tmp_path):
    pytest.importorskip("mlflow.telemetry.utils")
    seen = _run(tmp_path, ORT_DISABLE_TELEMETRY="0", MLFLOW_DISABLE_TELEMETRY="false")
    assert seen == {"mlflow_off": False, "ort": "0"}
