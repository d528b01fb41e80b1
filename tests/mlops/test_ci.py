"""`batchscore ci`: code quality, unit tests and data tests of a user's project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchscore.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diabetes"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "diabetes"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "mlruns"))
    return copy


def ci(project: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ci", "--project", str(project)])
    return result.exit_code, result.output


def test_the_example_project_passes(project):
    code, out = ci(project)
    assert code == 0, out
    assert [line.split()[-1] for line in out.splitlines()] == ["passed"] * 3


def test_a_lint_error_fails_and_is_shown(project):
    with (project / "train.py").open("a") as fh:
        fh.write("\n\ndef unused():\n    import os\n")
    code, out = ci(project)
    assert code == 1 and "code quality (ruff)    FAILED" in out and "F401" in out
    assert "unit tests (pytest)    passed" in out  # the other checks still ran


def test_a_failing_unit_test_fails(project):
    (project / "tests" / "test_extra.py").write_text("def test_no():\n    assert 1 == 2\n")
    code, out = ci(project)
    assert code == 1 and "unit tests (pytest)    FAILED" in out and "test_no" in out


def test_shifted_data_fails_the_data_tests_naming_the_column(project):
    with (project / "data.py").open("a") as fh:  # new data drifted from the reference
        fh.write("\n_load = load\n\n\ndef load():  # noqa: F811\n    frame = _load()\n"
                 "    frame['bmi'] = frame['bmi'] + 15\n    return frame\n\n\n"
                 "def reference():  # noqa: F811\n    return _load()\n")
    (project / "tests").rename(project / "no-tests")  # its own tests would fail too
    code, out = ci(project)
    assert code == 1 and "data tests             FAILED" in out and "'bmi'" in out


def test_a_folder_that_is_not_a_project(tmp_path):
    code, out = ci(tmp_path)
    assert code == 2 and "error:" in out
