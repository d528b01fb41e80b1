"""The build pipeline of a user's project: code quality, unit tests, data tests.

``batchscore ci --project DIR`` runs them all (a failure does not stop the others, so one run
says everything that is wrong) and exits non-zero when one fails, so any CI system can call
it; ``examples/diabetes/.github/workflows/ci.yml`` shows GitHub Actions doing so.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProjectError
from .project import load_project

__all__ = ["CheckResult", "run_ci"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool | None  # None: not applicable (skipped)
    details: str


def _run(args: list[str], cwd: Path) -> tuple[bool, str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)  # nosec B603  # admin's project
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def run_ci(project: str | Path) -> list[CheckResult]:
    """Run the project's checks; raises ProjectError for a folder that is not a project."""
    proj = load_project(project)
    root = proj.path
    results: list[CheckResult] = []
    if importlib.util.find_spec("ruff") is None:
        raise ProjectError("code quality needs ruff: pip install ruff")
    ok, out = _run([sys.executable, "-m", "ruff", "check", "."], root)
    results.append(CheckResult("code quality (ruff)", ok, out))
    if (root / "tests").is_dir():
        # -c os.devnull: the project's own settings only, never those of a repository around it
        ok, out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-c", os.devnull, "--rootdir", ".", "tests"], root)
        results.append(CheckResult("unit tests (pytest)", ok, out))
    else:
        results.append(CheckResult("unit tests (pytest)", None, "no tests/ folder"))
    data = proj.module("data")
    frame = data.load()
    problems = list(proj.module("data_tests").check(frame, data.reference()))
    results.append(CheckResult(
        "data tests", not problems,
        "\n".join(problems) if problems else f"{len(frame)} rows pass the schema and shift tests",
    ))
    return results
