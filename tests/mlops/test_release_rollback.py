"""A release whose smoke test passes on staging but fails in production, after the swap.

What differs in production here is real: the production deployment runs with the settings of
the process that deployed it, and that environment sets ``SCORE_UNITS=mmol/l``, a unit that
version 2 of the model (which reads its units from the environment) does not know, so it
answers ``null`` predictions there. Staging, started by the release with the releasing
process's environment, has no such setting and passes. The release must swap the deployment
back to the version it served, without losing a request, and put the ``production`` alias
and its history back exactly: none, when there was none.

Each test has a workspace and a deployment of its own."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_diabetes

from batchscore.mlops.release import SAMPLE_ROWS, SmokeTestError, release
from batchscore.registry.models import (
    HISTORY_TAG,
    alias_version,
    artifact_location,
    client,
    promote,
    use_registry,
)
from batchscore.serving.child import log_stamp
from batchscore.serving.supervisor import (
    DeploymentError,
    get_deployment,
    list_deployments,
    start_deployment,
    stop_deployment,
    swap_deployment,
)

FRAME = load_diabetes(as_frame=True, scaled=False).frame.astype("float64")
FEATURES = [c for c in FRAME.columns if c != "target"]
NAME = "units"
PRODUCTION_ENV = {"SCORE_UNITS": "mmol/l"}  # the deployed process's setting; staging has none

PLAIN = '''
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Plain(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        return [float(v) for v in model_input.sum(axis=1)]


set_model(Plain())
'''

UNITS = '''
import os

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

FACTORS = {"mg/dL": 1.0, "mmol/L": 0.0555}


class Units(PythonModel):
    """Scores in the units the deployment is configured with; an unknown unit scores null."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float | None]:
        factor = FACTORS.get(os.environ.get("SCORE_UNITS", "mg/dL"))
        return [None if factor is None else float(v) * factor for v in model_input.sum(axis=1)]


set_model(Units())
'''

CHECKED_UNITS = '''
import os

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

FACTORS = {"mg/dL": 1.0, "mmol/L": 0.0555}


class CheckedUnits(PythonModel):
    """Refuses to load with a unit it does not know."""

    def load_context(self, context):
        unit = os.environ.get("SCORE_UNITS", "mg/dL")
        if unit not in FACTORS:
            raise ValueError(f"unknown SCORE_UNITS {unit!r}")
        self.factor = FACTORS[unit]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        return [float(v) * self.factor for v in model_input.sum(axis=1)]


set_model(CheckedUnits())
'''


def register(ws, code: str, folder: Path, alias: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """Log the model defined by ``code`` (MLflow models from code) as a new version."""
    import mlflow
    from mlflow.models import infer_signature

    use_registry(ws)
    c = client(ws)
    experiment = c.get_experiment_by_name(NAME)
    experiment_id = experiment.experiment_id if experiment else c.create_experiment(
        NAME, artifact_location=f"{artifact_location(ws)}/{NAME}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model_code.py"
    path.write_text(textwrap.dedent(code))
    with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment_id) as run:
        # MLflow recommends an input example; it would run pandas code that warns
        warnings.filterwarnings("ignore", ".*An input example was not provided", UserWarning)
        info = mlflow.pyfunc.log_model(name="model", python_model=str(path),
                                       signature=infer_signature(FRAME[FEATURES]),
                                       pip_requirements=["pandas"])
    if not c.search_registered_models(f"name = '{NAME}'"):
        c.create_registered_model(NAME)
    mv = c.create_model_version(NAME, info.model_uri, run_id=run.info.run_id)
    if alias:
        c.set_registered_model_alias(NAME, alias, mv.version)
    return int(mv.version)


def history(ws) -> list[int] | None:  # type: ignore[no-untyped-def]
    raw = (client(ws).get_registered_model(NAME).tags or {}).get(HISTORY_TAG)
    return None if raw is None else json.loads(raw)


class Load:
    """Clients scoring the deployment in a loop; every request must get a full answer.

    A new connection per request: an idle keep-alive connection closed by a draining
    process is the client's to retry, by HTTP's rules; every failure here is counted."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url, self.stop = url, threading.Event()
        self.failures: list[str] = []
        self.versions: list[str] = []
        self.threads = [threading.Thread(target=self.run) for _ in range(clients)]

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not self.stop.is_set():
                started = time.time()
                try:
                    r = http.post("/invocations", json={"instances": SAMPLE_ROWS})
                    v = http.get("/version")
                except httpx.HTTPError as exc:  # when, to read beside the deployment's log
                    self.failures.append(f"{type(exc).__name__}: {exc} (request sent at "
                                         f"{log_stamp(started)}, failed at {log_stamp()})")
                    continue
                if r.status_code != 200 or len(r.json()["predictions"]) != 2:
                    self.failures.append(f"{r.status_code}: {r.text}")
                self.versions.append(v.json()["version"])

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


@pytest.fixture
def deployed(mws, tmp_path):  # type: ignore[no-untyped-def]
    """units/1 (plain) deployed as production with no production alias; units/2 (reads its
    units) holds staging. The deployment's environment sets an unknown unit."""
    folder = tmp_path / "units"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SCORE_UNITS", raising=False)
        assert register(mws, PLAIN, folder / "plain") == 1
        assert register(mws, UNITS, folder / "units", alias="staging") == 2
        for key, value in PRODUCTION_ENV.items():
            mp.setenv(key, value)
        deployment = start_deployment(mws, NAME, 1, port=0, log_requests=False)
    yield deployment
    for d in list_deployments(mws):
        stop_deployment(mws, d.name, d.env)


@pytest.fixture(autouse=True)
def _staging_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SCORE_UNITS", raising=False)  # the releasing process's environment
    yield


def test_failed_production_smoke_test_without_a_previous_version(mws, deployed):
    assert alias_version(mws, NAME, "production") is None and history(mws) is None
    lines: list[str] = []
    with pytest.raises(SmokeTestError) as caught:
        release(mws, NAME, log=lines.append)
    message = str(caught.value)
    assert message == (
        f"smoke test of {NAME}/2 in production failed: check 'sample rows' failed: "
        f"prediction 0 is None, not a finite number; the deployment at {deployed.url} serves "
        f"version 1 again; the production alias is removed again")
    assert "  ok   sample rows: ok" in lines  # staging passed
    assert [c.name for c in caught.value.checks if not c.ok] == ["sample rows"]
    after = get_deployment(mws, NAME)
    assert after is not None and after.version == 1 and after.pid == deployed.pid
    assert after.child_pid != deployed.child_pid  # swapped to 2 and back to 1
    assert httpx.get(f"{deployed.url}/version").json() == {"model": NAME, "version": "1"}
    assert alias_version(mws, NAME, "production") is None  # as before the release
    assert history(mws) is None
    assert alias_version(mws, NAME, "staging").version == 2  # type: ignore[union-attr]
    assert get_deployment(mws, NAME, "staging") is None


def promoted(ws) -> None:  # type: ignore[no-untyped-def]
    """units/1, the version deployed, becomes production (the first ever promoted)."""
    promote(ws, NAME, 1)
    assert history(ws) == [1]


def test_failed_production_smoke_test_swaps_back_under_load(mws, cli, deployed):
    promoted(mws)
    before = get_deployment(mws, NAME)
    assert before is not None
    with Load(deployed.url) as load:
        result = cli("model", "release", NAME)
    assert result.exit_code == 1, result.output
    assert "  ok   sample rows: ok" in result.stdout  # staging
    assert "  FAIL sample rows: prediction 0 is None, not a finite number" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: smoke test of {NAME}/2 in production failed: check 'sample rows' failed: "
        f"prediction 0 is None, not a finite number; the deployment at {deployed.url} serves "
        f"version 1 again; the production alias is back on version 1"]
    # no request lost in the swap to 2 or in the swap back (else: the deployment's log)
    assert load.failures == [], Path(before.log).read_text()[-6000:]
    assert load.versions and load.versions[-1] == "1" and set(load.versions) <= {"1", "2"}
    after = get_deployment(mws, NAME)
    assert after is not None and after.version == 1 and after.pid == before.pid
    assert after.child_pid != before.child_pid
    assert alias_version(mws, NAME, "production").version == 1  # type: ignore[union-attr]
    assert history(mws) == [1]  # the failed promotion left no trace
    refused = cli("model", "rollback", NAME)
    assert refused.exit_code == 2
    assert "no earlier production version to roll back to (production is version 1" in (
        refused.stderr)
    assert get_deployment(mws, NAME).version == 1  # type: ignore[union-attr]


def test_a_version_production_cannot_load_is_not_swapped_in_and_the_alias_is_put_back(
        mws, deployed, tmp_path):
    promoted(mws)
    version = register(mws, CHECKED_UNITS, tmp_path / "checked")
    before = get_deployment(mws, NAME)
    assert before is not None and before.version == 1
    lines: list[str] = []
    with pytest.raises(DeploymentError) as caught:
        release(mws, NAME, version, log=lines.append)
    assert str(caught.value).startswith(
        f"swap of {NAME} (production) to version {version} failed; version 1 keeps serving: "
        f"version {version} did not start: ")
    assert "unknown SCORE_UNITS 'mmol/l'" in str(caught.value)
    assert "  ok   sample rows: ok" in lines and lines[-1] == (
        "the production alias is back on version 1")
    assert get_deployment(mws, NAME) == before  # same supervisor, same child
    assert alias_version(mws, NAME, "production").version == 1  # type: ignore[union-attr]
    assert history(mws) == [1]


def test_a_deployment_already_serving_the_version_is_left_as_it_was(mws, deployed):
    promoted(mws)
    swapped = swap_deployment(mws, NAME, 2)  # deployed by hand, before any release
    with pytest.raises(SmokeTestError) as caught:
        release(mws, NAME, 2)
    assert str(caught.value) == (
        f"smoke test of {NAME}/2 in production failed: check 'sample rows' failed: "
        f"prediction 0 is None, not a finite number; the deployment at {deployed.url} already "
        f"served it and is not changed; the production alias is back on version 1")
    assert get_deployment(mws, NAME) == swapped
    assert alias_version(mws, NAME, "production").version == 1  # type: ignore[union-attr]
    assert history(mws) == [1]
