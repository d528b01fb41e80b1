"""Retraining on the same data by the same code adds nothing; a candidate is compared with the
champion: ``production``, else the ``staging`` version.

Each test has a registry of its own and builds the versions it starts from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batchscore.mlops import get_version, list_models, train_evaluate_register
from batchscore.mlops.project import load_project
from batchscore.pipelines import claim_run, execute_run
from batchscore.triggers import create_trigger
from batchscore.triggers.watch import tick_schedule

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
RUN = ("pipeline", "run", "train-evaluate-register", "--project", str(PROJECT))


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the example outside git (code version ``unknown``) that the test may edit."""
    target = tmp_path / "proj" / "diabetes"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def retrain(cli, *params: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*RUN, *(p for param in params for p in ("--param", param)))
    assert result.exit_code == 0, result.output


def three_versions(cli) -> None:  # type: ignore[no-untyped-def]
    """diabetes/1 (the project's params) in staging, diabetes/2 (alpha 100) in production,
    diabetes/3 (alpha 10) in staging."""
    retrain(cli)
    retrain(cli, "train.alpha=100")
    promote = cli("model", "promote", "diabetes", "--version", "2")
    assert promote.exit_code == 0, promote.output
    retrain(cli, "train.alpha=10")


def test_running_twice_on_the_same_data_registers_one_version(mws, cli):
    first = cli(*RUN)
    assert first.exit_code == 0, first.output
    assert "diabetes/1 promoted to staging" in first.stdout
    again = cli(*RUN)
    assert again.exit_code == 0, again.output
    assert "not promoted: same data and code as version 1" in again.stdout
    assert "nothing registered" in again.stdout
    assert "train ..." not in again.stdout  # nothing trained either
    assert [v.version for v in list_models(mws, "diabetes")] == [1]
    assert get_version(mws, "diabetes@staging").version == 1


def test_the_duplicate_run_is_a_succeeded_pipeline_run_saying_why(mws, cli):
    retrain(cli)
    outcome = train_evaluate_register(mws, PROJECT)
    assert (outcome.registered, outcome.promoted, outcome.version) == (False, False, 1)
    assert outcome.reason == "not promoted: same data and code as version 1"
    v1 = get_version(mws, "diabetes/1")
    assert outcome.metrics == v1.metrics and outcome.mlflow_run == v1.run_id
    from batchscore.pipelines import get_run

    run = get_run(mws.engine, outcome.pipeline_run)
    assert (run.state, run.reason) == ("succeeded", outcome.reason)


def test_a_nightly_schedule_on_unchanged_data_adds_nothing(mws, cli):
    retrain(cli)
    trigger = create_trigger(mws, "nightly", "train-evaluate-register",
                             params={"project": str(PROJECT)}, cron="0 3 * * *")
    for night in (1, 2):
        run = tick_schedule(mws, trigger, now=trigger.created_at + night * 86400 + 3600)
        assert run is not None
        assert claim_run(mws, run.id)
        done = execute_run(mws, run.id)
        assert done.state == "succeeded", done.reason
        assert "not promoted: same data and code as version 1" in (done.reason or "")
    assert [v.version for v in list_models(mws, "diabetes")] == [1]


def test_without_production_a_candidate_must_beat_staging(mws, cli):
    retrain(cli)
    # a worse model (stronger regularisation) on the same data: other params, so not a twin
    worse = cli(*RUN, "--param", "train.alpha=100")
    assert worse.exit_code == 0, worse.output
    assert "evaluate against staging ..." in worse.stdout
    assert "not promoted: rmse 54.7045 does not beat staging's 53.4338" in worse.stdout
    assert "diabetes/2 not promoted" in worse.stdout
    v2 = get_version(mws, "diabetes/2")
    assert v2.tags["batchscore.compared_with"] == "1"
    assert v2.tags["batchscore.compared_with_alias"] == "staging"
    assert get_version(mws, "diabetes@staging").version == 1
    # the same worse run again: a twin of version 2, nothing more
    again = cli(*RUN, "--param", "train.alpha=100")
    assert again.exit_code == 0, again.output
    assert "not promoted: same data and code as version 2" in again.stdout
    assert [v.version for v in list_models(mws, "diabetes")] == [1, 2]


def test_with_production_the_candidate_is_compared_with_production(mws, cli):
    retrain(cli)
    retrain(cli, "train.alpha=100")
    # production: the weaker version 2; staging stays on the stronger version 1
    assert cli("model", "promote", "diabetes", "--version", "2").exit_code == 0
    middle = cli(*RUN, "--param", "train.alpha=10")
    assert middle.exit_code == 0, middle.output
    assert "evaluate against production ..." in middle.stdout
    assert "rmse 53.8844 beats production's 54.7045" in middle.stdout
    assert "diabetes/3 promoted to staging" in middle.stdout
    assert get_version(mws, "diabetes/3").tags["batchscore.compared_with_alias"] == "production"


def test_other_data_or_edited_code_trains_a_new_candidate(mws, cli, project_copy, tmp_path):
    three_versions(cli)
    import pandas as pd

    copy_run = ("pipeline", "run", "train-evaluate-register", "--project", str(project_copy))
    # the copy is outside git ("unknown" code version): its content still identifies it
    first = cli(*copy_run)
    assert first.exit_code == 0, first.output
    assert "same data and code" not in first.stdout
    assert "not promoted: same data and code as version 4" in cli(*copy_run).stdout
    # an uncommitted edit of the code: a new candidate
    train = project_copy / "train.py"
    train.write_text(train.read_text() + "\n# edited\n")
    edited = cli(*copy_run)
    assert "same data and code" not in edited.stdout and "diabetes/5" in edited.stdout
    # other data (a sample of the same rows), same code: a new candidate
    frame = load_project(project_copy).module("data").load().sample(frac=0.95, random_state=1)
    data = tmp_path / "sample.csv"
    frame.to_csv(data, index=False)
    other = cli(*copy_run, "--data", str(data))
    assert "same data and code" not in other.stdout and "diabetes/6" in other.stdout
    # the same file again: its twin
    twin = cli(*copy_run, "--data", str(data))
    assert "not promoted: same data and code as version 6" in twin.stdout
    assert pd.read_csv(data).shape[0] == len(frame)
    assert [v.version for v in list_models(mws, "diabetes")] == [1, 2, 3, 4, 5, 6]


def test_content_hash_follows_params_and_code_only(project_copy, tmp_path):
    base = load_project(project_copy).content_hash()
    assert load_project(project_copy).content_hash() == base
    assert load_project(project_copy, {"train.alpha": "2"}).content_hash() != base
    cache = project_copy / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.py").write_text("ignored")
    (project_copy / "notes.txt").write_text("not code")
    assert load_project(project_copy).content_hash() == base
    (project_copy / "helpers.py").write_text("X = 1\n")
    assert load_project(project_copy).content_hash() != base
