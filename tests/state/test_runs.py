"""Pipeline runs (``state/runs.py``, the one writer of ``pipeline_runs``) and the catalog that
finds pipeline definitions by name."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.exc import IntegrityError

from batchscore.pipelines import (
    PIPELINES,
    PipelineNotFoundError,
    get_pipeline,
    pipeline_definition,
    validate_params,
)
from batchscore.pipelines.catalog import _REGISTRY
from batchscore.state import runs
from batchscore.workspace import Workspace


def test_a_run_is_claimed_once_finished_once_and_requeued_only_while_running(
        ws: Workspace) -> None:
    with ws.engine.begin() as conn:
        run = runs.create_run(conn, "video-style", {"input": "a.mp4"}, created_by="me")
    assert runs.get_run(ws.engine, run.id).state == "queued"
    assert runs.queued_run_ids(ws.engine) == [run.id]
    assert runs.claim_run(ws.engine, run.id, "host:1")
    assert not runs.claim_run(ws.engine, run.id, "host:2")  # taken
    assert [r.id for r in runs.running_runs(ws.engine)] == [run.id]
    assert runs.requeue_run(ws.engine, run.id)
    assert runs.claim_run(ws.engine, run.id, "host:2")
    runs.attach_job(ws.engine, run.id, "job-1", "file:///out")
    assert runs.run_of_job(ws.engine, "job-1").id == run.id  # type: ignore[union-attr]
    done = runs.finish_run(ws.engine, run.id, "succeeded", "ok")
    assert (done.state, done.reason, done.job_id, done.runner) == (
        "succeeded", "ok", "job-1", "host:2")
    again = runs.finish_run(ws.engine, run.id, "failed", "late")  # the first outcome stays
    assert (again.state, again.reason) == ("succeeded", "ok")
    assert not runs.requeue_run(ws.engine, run.id)
    assert runs.run_of_job(ws.engine, "job-1") is None  # finished
    with pytest.raises(ValueError, match="finishes as one of"):
        runs.finish_run(ws.engine, run.id, "running", None)
    with pytest.raises(runs.RunNotFoundError, match="no pipeline run with id 'nope'"):
        runs.get_run(ws.engine, "nope")


def test_a_run_key_records_one_run(ws: Workspace) -> None:
    with ws.engine.begin() as conn:
        first = runs.create_run(conn, "batch-job", {"job": "j"}, run_key="k")
    with pytest.raises(IntegrityError), ws.engine.begin() as conn:
        runs.create_run(conn, "batch-job", {"job": "j"}, run_key="k")
    assert runs.run_by_key(ws.engine, "k").id == first.id  # type: ignore[union-attr]
    assert [r.id for r in runs.list_runs(ws.engine)] == [first.id]


def test_the_catalog_lists_published_pipelines_in_order() -> None:
    assert list(PIPELINES) == ["video-style", "batch-endpoint", "train-evaluate-register",
                               "batch-job"]
    for name in _REGISTRY:
        assert pipeline_definition(name).name == name
    assert pipeline_definition("batch-job-query").published is False
    assert "batch-job-query" not in PIPELINES
    assert PIPELINES.get("batch-job-query") is None


@pytest.mark.parametrize("name", ["batch-job-query", "batchscore.video.published:VideoStyle",
                                  "os:system", "../video-style", ""])
def test_names_from_requests_are_only_looked_up(ws: Workspace, name: str) -> None:
    with pytest.raises(PipelineNotFoundError, match="no pipeline named"):
        get_pipeline(name)
    with pytest.raises(PipelineNotFoundError):
        validate_params(ws, name, {})


def test_the_catalog_imports_no_domain_until_a_pipeline_is_looked_up() -> None:
    code = ("import sys, batchscore.pipelines as p\n"
            "domains = ('batchscore.video', 'batchscore.mlops', 'batchscore.endpoints', "
            "'batchscore.endpoints.published')\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(domains))\n"
            "assert not loaded, loaded\n"
            "p.get_pipeline('video-style')\n"
            "assert 'batchscore.video.published' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
