"""batchscore.paths: the system store's layout, spelled once (issue 16)."""

from __future__ import annotations

import re
from pathlib import Path

import batchscore
from batchscore import paths

SRC = Path(batchscore.__file__).resolve().parent


def test_the_layout() -> None:
    assert paths.job_logs("j1") == "jobs/j1/logs"
    assert paths.job_code("j1") == "jobs/j1/code"
    assert paths.job_parts("j1") == "jobs/j1/parts"
    assert paths.job_staging("j1") == "jobs/j1/staging"
    assert paths.model_pin("j1") == "jobs/j1/tabular.json"
    assert paths.rejected_rows("j1") == "jobs/j1/logs/rejected_rows.csv"
    assert paths.part_path("jobs/j1/parts", 12_345, 2, ".mp4") == \
        "jobs/j1/parts/00012/00012345-2.mp4"
    assert paths.progress_file("jobs/j1/logs", 3, 1) == "jobs/j1/logs/progress/00000003-1.json"
    assert paths.frames_file("jobs/j1/logs", paths.attempt_name(3, 1)) == \
        "jobs/j1/logs/frames/00000003-1.jsonl"
    assert paths.workers_dir("jobs/j1/logs") == "jobs/j1/logs/workers"
    assert paths.script_bundle("ab12") == "scripts/ab12"
    assert paths.sql_snapshot("ab12") == "snapshots/ab12/result.parquet"


def test_no_other_module_spells_a_job_folder() -> None:
    """``jobs/<id>/...`` of the system store is written in paths.py only (API routes such as
    ``/api/v1/jobs/{id}`` are not store paths)."""
    spelled = re.compile(r"""["']jobs/\{""")  # a route ("/jobs/{id}") starts with a slash
    found = [f"{path.relative_to(SRC)}:{number}: {line.strip()}"
             for path in sorted(SRC.rglob("*.py")) if path != SRC / "paths.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if spelled.search(line)]
    assert not found, "\n".join(found)
