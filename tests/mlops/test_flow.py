"""train-evaluate-register on examples/diabetes, and the registry commands.

Each test has a registry of its own and builds the history it starts from: a first model, its
promotion, a better candidate, a worse one, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from sqlalchemy import select

from batchscore.mlops import get_version, list_models, registry_uri
from batchscore.state.tables import pipeline_runs

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"


RUN = ("pipeline", "run", "train-evaluate-register", "--project", str(PROJECT))


def assert_error(result, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def train(cli, alpha: str):  # type: ignore[no-untyped-def]
    result = cli(*RUN, "--param", f"train.alpha={alpha}")
    assert result.exit_code == 0, result.output
    return result


def promote(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("model", "promote", "diabetes")
    assert result.exit_code == 0, result.output


def first_in_production(cli) -> None:  # type: ignore[no-untyped-def]
    """diabetes/1 (alpha 100) in production and staging."""
    train(cli, "100")
    promote(cli)


def three_versions(cli) -> None:  # type: ignore[no-untyped-def]
    """diabetes/1 (alpha 100), diabetes/2 (alpha 1) in production and staging after 1,
    diabetes/3 (alpha 10) not promoted."""
    first_in_production(cli)
    train(cli, "1")
    promote(cli)
    train(cli, "10")


def test_registry_is_a_file_of_its_own_in_the_workspace(mws):
    assert registry_uri(mws) == f"sqlite:///{mws.settings.root / 'mlflow.db'}"


def test_first_model_becomes_the_candidate(mws, cli):
    result = cli(*RUN, "--param", "train.alpha=100")
    assert result.exit_code == 0, result.output
    assert "data tests passed (442 rows)" in result.stdout
    assert ("no production or staging version yet: the first model becomes the candidate"
            in result.stdout)
    assert "diabetes/1 promoted to staging" in result.stdout
    v = get_version(mws, "diabetes@staging")
    assert v.version == 1 and v.aliases == ["staging"]
    assert v.tags["batchscore.decision"] == "promoted"
    assert len(v.tags["batchscore.data_hash"]) == 16
    assert v.tags["batchscore.code_version"]
    assert abs(v.metrics["rmse"] - 54.7045) < 1e-3
    # lineage: the version points at its MLflow training run, which holds params and metrics
    run = MlflowClient(registry_uri(mws)).get_run(v.run_id)
    assert run.data.params["train.alpha"] == "100"
    assert abs(run.data.metrics["rmse"] - 54.7045) < 1e-3
    assert run.data.tags["batchscore.pipeline_run"] == v.tags["batchscore.pipeline_run"]
    # the pipeline run is recorded beside the others
    with mws.engine.connect() as conn:
        row = conn.execute(select(pipeline_runs).where(
            pipeline_runs.c.id == v.tags["batchscore.pipeline_run"])).one()
    assert (row.pipeline, row.state) == ("train-evaluate-register", "succeeded")
    # artifacts live in the system store
    assert mws.system.exists("mlflow", "diabetes")


def test_promote_moves_production_to_the_staging_version(cli):
    train(cli, "100")
    result = cli("model", "promote", "diabetes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "diabetes/1 is production\n"
    shown = cli("model", "show", "diabetes@production")
    assert shown.exit_code == 0
    assert shown.stdout.startswith("diabetes/1 [production, staging]  mae=")
    assert "batchscore.decision: promoted" in shown.stdout


def test_a_better_candidate_moves_staging(mws, cli):
    first_in_production(cli)
    result = cli(*RUN, "--param", "train.alpha=1")
    assert result.exit_code == 0, result.output
    assert ("rmse 53.4338 beats production's 54.7045 by more than the margin of 1.0% "
            "(needed <= 54.1574)") in result.stdout
    assert "diabetes/2 promoted to staging" in result.stdout
    assert get_version(mws, "diabetes@staging").version == 2
    assert get_version(mws, "diabetes@production").version == 1


def test_a_candidate_within_the_margin_is_not_promoted_and_says_why(mws, cli):
    first_in_production(cli)
    train(cli, "1")
    assert cli("model", "promote", "diabetes").exit_code == 0  # production = 2
    result = cli(*RUN, "--param", "train.alpha=10")
    assert result.exit_code == 0, result.output
    assert ("not promoted: rmse 53.8844 does not beat production's 53.4338 by the margin of "
            "1.0% (needed <= 52.8994)") in result.stdout
    assert "diabetes/3 not promoted" in result.stdout
    v3 = get_version(mws, "diabetes/3")
    assert v3.aliases == [] and v3.tags["batchscore.decision"] == "not promoted"
    assert v3.tags["batchscore.compared_with"] == "2"
    assert get_version(mws, "diabetes@staging").version == 2


def test_list_shows_every_version(mws, cli):
    three_versions(cli)
    result = cli("model", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["diabetes/1", "diabetes/2", "diabetes/3"]
    assert lines[1].startswith("diabetes/2 [production, staging]")
    assert lines[2].endswith("not promoted")
    listed = json.loads(cli("model", "list", "diabetes", "--json").stdout)
    assert [v["version"] for v in listed] == [1, 2, 3]
    assert len(list_models(mws)) == 3


def test_rollback_restores_the_previous_production_version(mws, cli):
    three_versions(cli)
    result = cli("model", "rollback", "diabetes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "diabetes/1 is production again\n"
    assert get_version(mws, "diabetes@production").version == 1
    assert_error(cli("model", "rollback", "diabetes"),
                 "model 'diabetes' has no earlier production version to roll back to "
                 "(production is version 1, the first ever promoted)")


def test_failing_data_tests_stop_the_run_and_name_the_columns(mws, cli, tmp_path):
    three_versions(cli)
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.loc[3, "bp"] = None
    frame.loc[5, "s5"] = 99.0
    frame = frame.drop(columns=["s6"])
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    err = assert_error(cli(*RUN, "--data", str(bad)), "data tests failed:")
    assert "column 'bp': 1 missing values (NaN/null)" in err
    assert "column 's5': fails in_range(2, 8) in 1 rows (for example 99.0)" in err
    assert "column 's6': missing from the data" in err
    assert len(list_models(mws, "diabetes")) == 3  # nothing registered


def test_distribution_shift_is_reported_by_column(cli, tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["bmi"] = frame["bmi"] + 12
    shifted = tmp_path / "shifted.csv"
    frame.to_csv(shifted, index=False)
    err = assert_error(cli(*RUN, "--data", str(shifted)), "data tests failed:")
    assert ("column 'bmi': distribution shift against the reference data (mean 38.38 vs "
            "26.38, KS statistic 0.85, p=3.1e-163 < 0.001)\n") in err
    assert "'age'" not in err


def test_bad_projects_and_params_are_refused(cli, tmp_path):
    assert_error(cli("pipeline", "run", "train-evaluate-register", "--project", str(tmp_path)),
                 f"{tmp_path} is not a project folder: it has no params.yaml")
    assert_error(cli(*RUN, "--param", "promotion.margin=2"),
                 "params.yaml: promotion.margin must be a number in [0.0, 1.0], got 2")
    assert_error(cli(*RUN, "--param", "alpha"),
                 "--param takes SECTION.KEY=VALUE, got 'alpha'")
    assert_error(cli("pipeline", "run", "video-style", "--project", str(PROJECT)),
                 "pipeline run runs 'train-evaluate-register' on this machine; got "
                 "'video-style'")


def test_unknown_models_versions_and_aliases_are_named(cli):
    three_versions(cli)
    assert_error(cli("model", "show", "nope"),
                 "no registered model named 'nope'; models are diabetes")
    assert_error(cli("model", "show", "diabetes/9"),
                 "model 'diabetes' has no version 9; versions are 1, 2, 3")
    assert_error(cli("model", "show", "diabetes@canary"),
                 "model 'diabetes' has no version with alias 'canary'")
    assert_error(cli("model", "promote", "diabetes", "--version", "7"),
                 "model 'diabetes' has no version 7")


def test_data_hash_ignores_the_index():
    from batchscore.mlops.flow import data_hash

    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert data_hash(frame) == data_hash(frame.set_axis([5, 6]))
    assert data_hash(frame) != data_hash(frame.rename(columns={"a": "b"}))


def test_the_production_version_serves_online(mws, cli):
    import warnings

    first_in_production(cli)
    from batchscore.serving import create_app, load_served_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    served = load_served_model(mws, "diabetes@production")
    assert (served.name, served.version) == ("diabetes", "1")
    assert [n for n, _ in served.signature] == ["age", "sex", "bmi", "bp", "s1", "s2", "s3",
                                                "s4", "s5", "s6"]
    row = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
    with TestClient(create_app(served)) as client:
        response = client.post("/invocations", json={"instances": [row]})
        assert response.status_code == 200, response.text
        assert 100 < response.json()["predictions"][0] < 300
        bad = client.post("/invocations", json={"instances": [row[:9]]})
        assert bad.json()["message"] == (
            "instances row 0 has 9 values; the model expects 10 columns (age, sex, bmi, bp, "
            "s1, s2, s3, s4, s5, s6)")
    assert_error(cli("model", "serve", "diabetes@canary"),
                 "model 'diabetes' has no version with alias 'canary'")
