"""Deployments and the release pipeline, with real processes on 127.0.0.1.

Each test has a workspace of its own and builds what it starts from: version 1 in production
and deployed, version 2 released under load (a swap that loses nothing), broken versions whose
release fails, a rollback, bad input, and stopping the deployment."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from batchscore.mlops import get_version, promote, train_evaluate_register
from batchscore.mlops.release import SAMPLE_ROWS, smoke_test
from batchscore.registry.models import artifact_location, client, registry_uri
from batchscore.serving.supervisor import (
    DeploymentError,
    get_deployment,
    list_deployments,
    start_deployment,
    stop_deployment,
    swap_deployment,
)

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
FRAME = load_diabetes(as_frame=True, scaled=False).frame.astype("float64")
FEATURES = [c for c in FRAME.columns if c != "target"]


def register(ws, name: str, model, columns: list[str], alias: str | None = None, *,  # type: ignore[no-untyped-def]
             signature: bool = True) -> int:
    """Log ``model`` (fitted on ``columns``) to MLflow and register it as a new version."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    uri = registry_uri(ws)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    c = client(ws)
    experiment = c.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else c.create_experiment(
        name, artifact_location=f"{artifact_location(ws)}/{name}")
    x = FRAME[columns]
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            signature=infer_signature(x, model.predict(x)) if signature else None)
    if not c.search_registered_models(f"name = '{name}'"):
        c.create_registered_model(name)
    mv = c.create_model_version(name, info.model_uri, run_id=run.info.run_id)
    if alias:
        c.set_registered_model_alias(name, alias, mv.version)
    return int(mv.version)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_error(result, code: int, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


@pytest.fixture(autouse=True)
def _stop_every_deployment(mws) -> Iterator[None]:  # type: ignore[no-untyped-def]
    yield
    for d in list_deployments(mws):
        stop_deployment(mws, d.name, d.env)


@pytest.fixture
def prod(mws):  # type: ignore[no-untyped-def]
    """diabetes/1 (alpha 100) in production, not deployed; a free port to deploy it on."""
    train_evaluate_register(mws, PROJECT, overrides={"train.alpha": "100"})
    promote(mws, "diabetes")
    return free_port()


@pytest.fixture
def deployed(mws, prod):  # type: ignore[no-untyped-def]
    """diabetes/1 in production and deployed; the deployment's port."""
    return start_deployment(mws, "diabetes", 1, port=0, log_requests=False).port


@pytest.fixture
def second(mws, prod):  # type: ignore[no-untyped-def]
    """diabetes/2 (alpha 1) released: production after version 1, and deployed; its port."""
    assert train_evaluate_register(mws, PROJECT, overrides={"train.alpha": "1"}).version == 2
    promote(mws, "diabetes")
    return start_deployment(mws, "diabetes", 2, port=0, log_requests=False).port


def test_deploy_serves_the_production_version(mws, cli, prod):
    result = cli("model", "deploy", "diabetes", "--port", str(prod), "--no-log")
    assert result.exit_code == 0, result.output
    url = f"http://127.0.0.1:{prod}"
    assert result.stdout.startswith(f"diabetes/1 serves on {url} (supervisor pid ")
    assert httpx.get(f"{url}/version").json() == {"model": "diabetes", "version": "1"}
    predictions = httpx.post(f"{url}/invocations", json={"instances": SAMPLE_ROWS}).json()
    assert len(predictions["predictions"]) == 2
    assert all(np.isfinite(predictions["predictions"]))
    assert [c.name for c in smoke_test(url, "diabetes", 1) if c.ok] == [
        "ping", "version", "sample rows", "schema"]
    shown = cli("model", "deployments")
    assert shown.stdout.startswith(f"diabetes/1 (production) {url} pid ")
    state = mws.settings.root / "deployments" / "diabetes.production.json"
    assert state.stat().st_mode & 0o777 == 0o600  # it holds the control channel's key


def test_deploy_refuses_bad_input(mws, cli, deployed):
    prod = deployed
    assert_error(cli("model", "deploy", "diabetes", "--port", "0"), 2,
                 "model 'diabetes' already has a running production deployment: version 1 "
                 f"at http://127.0.0.1:{prod}")
    assert_error(cli("model", "deploy", "nope"), 2, "no registered model named 'nope'")
    register(mws, "other", Ridge().fit(FRAME[FEATURES], FRAME["target"]), FEATURES,
             "production")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_error(cli("model", "deploy", "other", "--port", str(port)), 2,
                     f"cannot listen on 127.0.0.1:{port}: Address already in use (the port is "
                     "taken)")
    assert_error(cli("model", "deploy", "other", "--port", "70000"), 2,
                 "port 70000 is not a TCP port")
    assert get_deployment(mws, "other") is None


def test_release_swaps_production_under_load_without_losing_a_request(mws, cli, deployed):
    prod = deployed
    outcome = train_evaluate_register(mws, PROJECT, overrides={"train.alpha": "1"})
    assert outcome.promoted and outcome.version == 2
    url = f"http://127.0.0.1:{prod}"
    before = get_deployment(mws, "diabetes")
    assert before is not None
    stop = threading.Event()
    failures: list[str] = []
    versions: list[str] = []
    answered = [0]

    def load() -> None:
        # new connection per request: an idle keep-alive connection closed by the draining
        # process is the client's to retry, by HTTP's rules; we count every failure
        with httpx.Client(base_url=url, timeout=30,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not stop.is_set():
                try:
                    r = http.post("/invocations", json={"instances": SAMPLE_ROWS})
                    v = http.get("/version")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200 or len(r.json()["predictions"]) != 2:
                    failures.append(f"{r.status_code}: {r.text}")
                versions.append(v.json()["version"])
                answered[0] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        result = cli("model", "release", "diabetes")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert result.exit_code == 0, result.output
    assert "ok   sample rows: ok" in result.stdout
    assert result.stdout.endswith(
        f"released diabetes/2 to production; the deployment at {url} serves it\n")
    assert failures == []
    assert answered[0] > 0
    assert versions[0] == "1" and versions[-1] == "2" and set(versions) == {"1", "2"}
    after = get_deployment(mws, "diabetes")
    assert after is not None and after.version == 2
    assert after.pid == before.pid and after.child_pid != before.child_pid  # same socket owner
    assert get_version(mws, "diabetes@production").version == 2
    assert get_deployment(mws, "diabetes", "staging") is None  # the staging endpoint is gone
    assert httpx.get(f"{url}/version").json()["version"] == "2"


def nan_model() -> Ridge:
    model = Ridge().fit(FRAME[FEATURES], FRAME["target"])
    model.coef_ = np.full_like(model.coef_, np.nan)
    return model


@pytest.mark.parametrize(("make", "columns", "check"), [
    (nan_model, FEATURES, "check 'sample rows' failed: POST /invocations answered 500"),
    (lambda: Ridge().fit(FRAME[["age", "bmi", "bp"]], FRAME["target"]), ["age", "bmi", "bp"],
     "check 'sample rows' failed: POST /invocations answered 400: "),
], ids=["nan-predictions", "other-columns"])
def test_a_failing_smoke_test_leaves_production_untouched(mws, cli, second, make, columns, check):
    prod = second
    before = get_deployment(mws, "diabetes")
    assert before is not None and before.version == 2
    version = register(mws, "diabetes", make(), columns, "staging")
    result = cli("model", "release", "diabetes")
    assert_error(result, 1, f"smoke test of diabetes/{version} on staging failed: ", check,
                 "production stays at version 2")
    assert "FAIL sample rows" in result.stdout
    assert get_version(mws, "diabetes@production").version == 2
    after = get_deployment(mws, "diabetes")
    assert after == before  # same supervisor, same child, same version
    assert httpx.get(f"http://127.0.0.1:{prod}/version").json()["version"] == "2"
    assert get_deployment(mws, "diabetes", "staging") is None


def test_a_version_that_cannot_start_is_not_swapped_in(mws, second):
    prod = second
    before = get_deployment(mws, "diabetes")
    bare = register(mws, "diabetes", Ridge().fit(FRAME[FEATURES], FRAME["target"]), FEATURES,
                    signature=False)
    with pytest.raises(DeploymentError) as caught:
        swap_deployment(mws, "diabetes", bare)
    assert str(caught.value).startswith(
        f"swap of diabetes (production) to version {bare} failed; version 2 keeps serving: "
        f"version {bare} did not start: model models:/diabetes/{bare} has no input signature")
    assert get_deployment(mws, "diabetes") == before
    assert httpx.get(f"http://127.0.0.1:{prod}/version").json()["version"] == "2"


def test_rollback_swaps_the_deployment_back(mws, cli, second):
    prod = second
    result = cli("model", "rollback", "diabetes")
    assert result.exit_code == 0, result.output
    url = f"http://127.0.0.1:{prod}"
    assert result.stdout == ("diabetes/1 is production again\n"
                             f"the deployment at {url} serves version 1\n")
    assert httpx.get(f"{url}/version").json() == {"model": "diabetes", "version": "1"}
    assert get_version(mws, "diabetes@production").version == 1
    assert_error(cli("model", "rollback", "diabetes"), 2,
                 "no earlier production version to roll back to")
    assert httpx.get(f"{url}/version").json()["version"] == "1"


def test_release_refuses_bad_input(mws, cli, prod, tmp_path):
    register(mws, "other", Ridge().fit(FRAME[FEATURES], FRAME["target"]), FEATURES,
             "production")
    assert_error(cli("model", "release", "nope"), 2, "no registered model named 'nope'")
    assert_error(cli("model", "release", "other"), 2,
                 "model 'other' has no version with alias 'staging'")
    assert_error(cli("model", "release", "diabetes", "--version", "99"), 2,
                 "model 'diabetes' has no version 99")
    bad = tmp_path / "rows.json"
    bad.write_text('{"rows": 1}')
    assert_error(cli("model", "release", "diabetes", "--sample", str(bad)), 2,
                 f"--sample {bad} must hold a non-empty list of rows")
    assert_error(cli("model", "undeploy", "other"), 2,
                 "model 'other' has no running production deployment")
    assert_error(cli("model", "undeploy", "diabetes", "--env", "qa"), 2,
                 "environment 'qa' is not one of production, staging")


def test_undeploy_stops_the_deployment(mws, cli, deployed):
    prod = deployed
    d = get_deployment(mws, "diabetes")
    assert d is not None
    result = cli("model", "undeploy", "diabetes")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"stopped diabetes/1 (production) on http://127.0.0.1:{prod}\n"
    assert get_deployment(mws, "diabetes") is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{prod}/ping")
    assert cli("model", "deployments").stdout == "no running deployments\n"
    assert not pd.isna(d.started_at)
