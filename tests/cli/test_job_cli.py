"""``batchscore job``: list, show, logs, cancel and resume, with exact output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_checks import Invoke, assert_one_error

from batchscore.cli import _common
from batchscore.jobs import get_job, spec_from_mapping, submit_job
from batchscore.state.jobs import Job
from batchscore.workspace import Workspace

MIXED = """\
import os
def run(mini_batch):
    print("scoring", *[os.path.basename(p) for p in mini_batch])
    if any(p.endswith("f1.txt") for p in mini_batch):
        raise ValueError("cannot score f1")
    return [os.path.basename(p) for p in mini_batch]
"""


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"{i}\n")
    return folder


@pytest.fixture
def finished(invoke: Invoke, ws: Workspace, tmp_path: Path, inputs: Path) -> Job:
    """A finished job: 3 mini-batches of 1 file; the one of f1.txt fails (no retries)."""
    script = tmp_path / "mixed.py"
    script.write_text(MIXED)
    result = invoke("job", "run", "--scoring-script", str(script), "-i", str(inputs),
                    "-o", str(tmp_path / "out"), "--mini-batch-size", "1", "--max-retries", "0",
                    "--no-progress")
    assert result.exit_code == 0, result.output
    job = ws_jobs(ws)[0]
    assert result.stdout == (f"job {job.id} succeeded: 2/3 items, 1 failed\n"
                             f"output: file://{tmp_path / 'out'}\n")
    assert result.stderr == f"created job {job.id}: 3 mini-batches, 3 items, 1 worker(s)\n"
    return job


def ws_jobs(ws: Workspace) -> list[Job]:
    from batchscore.jobs import list_jobs

    return list_jobs(ws)


@pytest.fixture
def queued(ws: Workspace, tmp_path: Path, inputs: Path) -> Job:
    script = tmp_path / "echo.py"
    script.write_text("def run(mini_batch):\n    return mini_batch\n")
    job, created = submit_job(ws, spec_from_mapping({"scoring_script": str(script)}),
                              [str(inputs)], str(tmp_path / "queued-out"))
    assert created and job.state == "queued"
    return job


@pytest.mark.parametrize("width", [30, 60, 120])
def test_list_never_truncates_ids_however_narrow(invoke, finished, queued, monkeypatch, width):
    monkeypatch.setattr(_common.console, "_width", width)
    result = invoke("job", "list")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ job-")]
    assert [row.split()[1] for row in rows] == [queued.id, finished.id]  # newest first
    assert "queued" in rows[0] and "succeeded" in rows[1]


def test_list_json_and_state_filter(invoke, finished, queued):
    data = json.loads(invoke("job", "list", "--json").stdout)
    assert [(j["id"], j["state"]) for j in data] == [(queued.id, "queued"),
                                                    (finished.id, "succeeded")]
    data = json.loads(invoke("job", "list", "--json", "--state", "queued").stdout)
    assert [j["id"] for j in data] == [queued.id]


def test_show_json(invoke, finished, inputs, tmp_path):
    result = invoke("job", "show", finished.id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == finished.id and data["state"] == "succeeded"
    assert data["inputs"] == [f"file://{inputs}/f{i}.txt" for i in range(3)]
    assert data["output_url"] == f"file://{tmp_path / 'out'}"
    assert data["spec"]["mini_batch_size"] == 1
    assert data["spec"]["retry_settings"] == {"max_retries": 0, "timeout": 30.0}
    assert (data["items_total"], data["items_succeeded"], data["items_failed"]) == (3, 2, 1)
    assert data["minibatches"] == {"done": 2, "failed": 1}
    [failed] = data["failed_minibatches"]
    assert failed["idx"] == 1 and failed["attempts"] == 1
    assert failed["error"].endswith("ValueError: cannot score f1")


def test_show_text_and_unique_prefix(invoke, finished):
    result = invoke("job", "show", finished.id[:-2])  # a unique prefix is enough
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"            id: {finished.id}" in lines
    assert "  mini-batches: 3 {'done': 2, 'failed': 1}" in lines
    assert "         items: 3 total, 2 ok, 1 failed" in lines
    assert "  mini-batch 1 failed after 1 attempt(s): ValueError: cannot score f1" in lines


def test_logs_overview(invoke, finished):
    result = invoke("job", "logs", finished.id)
    assert result.exit_code == 0, result.output
    text = result.stdout
    overview = json.loads(text[: text.index("errors:")])
    assert overview["minibatches"] == {"total": 3, "done": 2, "failed": 1, "pending": 0}
    assert overview["items"] == {"total": 3, "succeeded": 2, "failed": 1,
                                "in_progress": 0}
    assert "errors: 1 failed attempt(s) (see --errors)\n" in text
    assert "timings: 3 record(s) (see --timings)\n" in text
    workers = re.findall(r"^  (worker-\S+) \((\d+) bytes\)$", text, re.MULTILINE)
    assert sorted(name.rsplit(".", 2)[-2] for name, _ in workers) == ["stderr", "stdout"]


def test_logs_errors(invoke, finished):
    result = invoke("job", "logs", finished.id, "--errors")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("=== mini-batch 1 attempt 1 ")
    assert result.stdout.count("=== mini-batch") == 1
    assert 'raise ValueError("cannot score f1")' in result.stdout
    assert "ValueError: cannot score f1" in result.stdout


def test_logs_timings(invoke, finished):
    result = invoke("job", "logs", finished.id, "--timings")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["minibatch"], r["attempt"], r["outcome"]) for r in records) == [
        (0, 1, "ok"), (1, 1, "error"), (2, 1, "ok")]


def test_logs_events(invoke, finished):
    result = invoke("job", "logs", finished.id, "--events")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "job-created" and names[-1] == "job-finished"
    assert "minibatch-failed" in names and "output-committed" in names
    assert events[-1]["state"] == "succeeded"


def test_logs_worker(invoke, finished):
    result = invoke("job", "logs", finished.id, "--worker", "stdout")
    assert result.exit_code == 0, result.output
    header, *printed = result.stdout.splitlines()
    assert re.fullmatch(r"==> worker-\S+\.stdout\.txt <==", header)
    assert printed == ["scoring f0.txt", "scoring f1.txt", "scoring f2.txt"]  # as printed
    result = invoke("job", "logs", finished.id, "--worker", "nobody")
    assert_one_error(result, "no worker log matches 'nobody'; logs: worker-")


def test_cancel_queued_job(invoke, ws, queued):
    result = invoke("job", "cancel", queued.id)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"job {queued.id} canceled\n"
    job = get_job(ws, queued.id)
    assert (job.state, job.reason) == ("canceled", "canceled by request")
    assert_one_error(invoke("job", "resume", queued.id),
                     f"job {queued.id} already canceled; nothing to resume")


def test_resume_a_queued_job_runs_it(invoke, ws, queued, tmp_path, inputs):
    result = invoke("job", "resume", queued.id, "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"job {queued.id} succeeded: 3/3 items\n")
    assert (tmp_path / "queued-out" / "predictions.csv").read_text().splitlines() == [
        f"{inputs}/f{i}.txt" for i in range(3)]


@pytest.mark.parametrize(("command", "message"), [
    ("resume", "already succeeded; nothing to resume"),
    ("cancel", "already succeeded; it cannot be canceled"),
])
def test_resume_or_cancel_a_finished_job(invoke, finished, tmp_path, command, message):
    before = (tmp_path / "out" / "predictions.csv").read_bytes()
    assert_one_error(invoke("job", command, finished.id), f"job {finished.id} {message}")
    assert (tmp_path / "out" / "predictions.csv").read_bytes() == before == b"f0.txt\nf2.txt\n"
