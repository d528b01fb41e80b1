"""The ``train-evaluate-register`` pipeline: data tests, train, evaluate, register.

1. **data tests**: the project's ``data_tests.check``; any problem stops the run with a
   :class:`DataTestError` naming the columns.
2. **same data and code?** When a version of the model was trained on data with the same
   hash, by the same code version (git sha) and the same project content (its ``*.py`` files
   and effective params, :meth:`~batchscore.mlops.project.Project.content_hash`), the run
   ends there: "not promoted: same data and code as version N", a successful outcome that
   trains nothing and registers nothing (a nightly retraining on unchanged data adds no
   version).
3. **train** on the training split, in an MLflow run (params, metrics, the model with its
   signature).
4. **evaluate** the candidate and the current champion on the same held-out split: the
   ``production`` version, or with none the ``staging`` one. The candidate is promoted to
   ``staging`` only when its rmse beats the champion's by the project's ``promotion.margin``
   (relative); with neither alias set yet it is. Not promoted is a normal, successful outcome
   whose reason says why.
5. **register** the candidate as a new version (tags: data hash, code version, content hash,
   metrics, the pipeline run, the decision) and, when promoted, move ``staging`` to it.

The run is recorded as a pipeline run (``pipeline_runs``) so that it shows beside the
others; the model version's ``batchscore.pipeline_run`` tag points back to it.

Tags, parameters and the run's recorded reason pass through
:func:`~batchscore.registry.models.safe_tag`: a URL password or a secret value (a parameter
override that carries one, an error naming a database URL) is masked, never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import BatchscoreError, DataTestError, InputError, ModelNotFoundError, ProjectError
from ..registry.models import (
    ModelVersion,
    alias_version,
    artifact_location,
    client,
    list_models,
    load_pyfunc,
    safe_tag,
    use_registry,
)
from ..state import runs
from ..workspace import Workspace
from .project import Project, load_project

__all__ = ["PIPELINE_NAME", "Outcome", "data_hash", "run_in_pipeline", "train_evaluate_register"]

PIPELINE_NAME = "train-evaluate-register"
DATA_TAG, CODE_TAG, CONTENT_TAG = ("batchscore.data_hash", "batchscore.code_version",
                                   "batchscore.content_hash")


@dataclass(frozen=True)
class Outcome:
    """How a run ended. ``registered`` is False when the run found a version trained on the
    same data by the same code: ``version``, ``mlflow_run`` and ``metrics`` are that
    version's, and nothing was trained or registered. ``champion_*``: the version the
    candidate was compared with (``production``, else ``staging``), if any."""

    pipeline_run: str
    mlflow_run: str
    model_name: str
    version: int
    promoted: bool
    reason: str
    metrics: dict[str, float]
    registered: bool = True
    champion_alias: str | None = None
    champion_version: int | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)


def data_hash(frame: pd.DataFrame) -> str:
    """A stable hash of a DataFrame's columns and values (not its index)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _finish(ws: Workspace, run_id: str, state: str, reason: str) -> None:
    runs.finish_run(ws.engine, run_id, state, safe_tag(reason))


def _decide(candidate: float, champion: float | None, margin: float,
            alias: str = "production") -> tuple[bool, str]:
    if champion is None:
        return True, ("no production or staging version yet: the first model becomes the "
                      "candidate")
    needed = champion * (1 - margin)
    if candidate <= needed:
        return True, (f"rmse {candidate:.4f} beats {alias}'s {champion:.4f} by more "
                      f"than the margin of {margin:.1%} (needed <= {needed:.4f})")
    return False, (f"not promoted: rmse {candidate:.4f} does not beat {alias}'s "
                   f"{champion:.4f} by the margin of {margin:.1%} (needed <= {needed:.4f})")


def _champion(ws: Workspace, name: str) -> tuple[str, ModelVersion] | None:
    """The version a candidate must beat: ``production``, else ``staging``, else none."""
    for alias in ("production", "staging"):
        found = alias_version(ws, name, alias)
        if found is not None:
            return alias, found
    return None


def _same_as(ws: Workspace, name: str, tags: dict[str, str]) -> ModelVersion | None:
    """The newest version of ``name`` trained on the same data hash by the same code version
    and project content as ``tags`` say; None when there is none (or no model yet). A version
    without a content hash (registered before it was recorded) never matches: the git sha
    alone misses uncommitted edits and is ``unknown`` outside git."""
    try:
        versions = list_models(ws, name)
    except ModelNotFoundError:
        return None
    keys = (DATA_TAG, CODE_TAG, CONTENT_TAG)
    same = [v for v in versions if all(v.tags.get(k) == tags[k] for k in keys)]
    return same[-1] if same else None


def _unchanged(run_id: str, twin: ModelVersion) -> Outcome:
    return Outcome(pipeline_run=run_id, mlflow_run=twin.run_id or "", model_name=twin.name,
                   version=twin.version, promoted=False, registered=False,
                   reason=f"not promoted: same data and code as version {twin.version}",
                   metrics=dict(twin.metrics))


def train_evaluate_register(ws: Workspace, project: str | Path | Project, *,
                            data: pd.DataFrame | None = None,
                            overrides: dict[str, str] | None = None,
                            log: Callable[[str], None] = lambda _: None) -> Outcome:
    """Run the pipeline on ``project`` (a folder); ``data`` replaces ``data.load()``."""
    proj = project if isinstance(project, Project) else load_project(project, overrides)
    with ws.engine.begin() as conn:
        run = runs.create_run(conn, PIPELINE_NAME, {"project": safe_tag(proj.path)},
                         state="running")
    try:
        outcome = _run(ws, proj, run.id, data, log)
    except DataTestError as exc:
        _finish(ws, run.id, "failed", str(exc))
        raise
    except BatchscoreError as exc:
        _finish(ws, run.id, "failed", str(exc))
        raise
    except Exception as exc:
        _finish(ws, run.id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    _finish(ws, run.id, "succeeded", outcome.reason)
    return outcome


def run_in_pipeline(ws: Workspace, project: str | Path, run_id: str, *,
                    data_url: str | None = None, overrides: dict[str, str] | None = None
                    ) -> Outcome:
    """The pipeline for a run that exists already (a schedule's or a storage trigger's,
    executed by the service's run slots, which record its end). ``data_url``: a CSV or
    Parquet file to train on instead of the project's ``data.load()``."""
    proj = load_project(project, overrides)
    data = None
    if data_url is not None:
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(data_url)
        try:
            with fs.open(path, "rb") as fh:
                data = (pd.read_parquet(fh) if path.lower().endswith(".parquet")
                        else pd.read_csv(fh))
        except (OSError, ValueError) as exc:
            raise DataTestError([safe_tag(f"training data {data_url}: cannot be read: {exc}")]
                                ) from None
    return _run(ws, proj, run_id, data, lambda _: None)


def _run(ws: Workspace, proj: Project, run_id: str, data: pd.DataFrame | None,
         log: Callable[[str], None]) -> Outcome:
    from sklearn.model_selection import train_test_split

    params = proj.params
    frame, features, target = _tested_data(proj, data, log)
    train_df, test_df = train_test_split(frame, test_size=float(params["data"]["test_size"]),
                                         random_state=int(params["data"]["seed"]))
    use_registry(ws)
    tags = {"batchscore.pipeline_run": run_id, DATA_TAG: data_hash(frame),
            CODE_TAG: safe_tag(proj.code_version()), CONTENT_TAG: proj.content_hash(),
            "batchscore.project": safe_tag(proj.path)}
    twin = _same_as(ws, proj.model_name, tags)
    if twin is not None:
        outcome = _unchanged(run_id, twin)
        log(f"{outcome.reason}: nothing trained, nothing registered")
        return outcome

    log("train ...")
    trained = _train(ws, proj, tags, train_df, test_df, features, target)
    metrics = trained.metrics
    log(f"trained: {', '.join(f'{k}={v:.4f}' for k, v in sorted(metrics.items()))}")

    champion = _champion(ws, proj.model_name)
    alias, best = champion if champion is not None else ("production", None)
    log(f"evaluate against {alias} ...")
    best_metrics = _champion_metrics(ws, proj, alias, best, test_df, features, target)
    promoted, reason = _decide(metrics["rmse"], best_metrics.get("rmse"),
                               float(params["promotion"]["margin"]), alias)
    log(reason)

    twin = _same_as(ws, proj.model_name, tags)  # registered by a run beside this one
    if twin is not None:
        outcome = _unchanged(run_id, twin)
        log(f"{outcome.reason}: nothing registered")
        return outcome
    log("register ...")
    version = _register(ws, proj, trained, tags, promoted, reason, alias, best)
    log(f"registered {proj.model_name} version {version}" + (" as staging" if promoted else ""))
    return Outcome(pipeline_run=run_id, mlflow_run=trained.mlflow_run,
                   model_name=proj.model_name, version=version, promoted=promoted,
                   reason=reason, metrics=metrics,
                   champion_alias=alias if best is not None else None,
                   champion_version=best.version if best is not None else None,
                   champion_metrics=best_metrics)


def _tested_data(proj: Project, data: pd.DataFrame | None, log: Callable[[str], None]
                 ) -> tuple[pd.DataFrame, list[str], str]:
    """The training data (``data``, else the project's ``data.load()``) once its data tests
    pass, with its feature columns and target; :class:`DataTestError` naming the problems."""
    data_mod = proj.module("data")
    frame = data if data is not None else data_mod.load()
    log("data tests ...")
    problems = proj.module("data_tests").check(frame, data_mod.reference())
    if problems:
        raise DataTestError(list(problems))
    log(f"data tests passed ({len(frame)} rows)")
    return frame, list(data_mod.FEATURES), str(data_mod.TARGET)


@dataclass(frozen=True)
class _Trained:
    model_uri: str
    mlflow_run: str
    metrics: dict[str, float]


def _train(ws: Workspace, proj: Project, tags: dict[str, str], train_df: pd.DataFrame,
           test_df: pd.DataFrame, features: list[str], target: str) -> _Trained:
    """Train and evaluate the candidate in an MLflow run (params, metrics, the model)."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    params = proj.params
    c = client(ws)
    experiment = c.get_experiment_by_name(proj.model_name)
    experiment_id = (experiment.experiment_id if experiment is not None else
                     c.create_experiment(proj.model_name,
                                         artifact_location=f"{artifact_location(ws)}/"
                                         f"{proj.model_name}"))
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as active:
        mlflow.log_params({"train." + k: safe_tag(v) for k, v in params.get("train", {}).items()})
        mlflow.log_params({"data.test_size": safe_tag(params["data"]["test_size"]),
                           "data.seed": safe_tag(params["data"]["seed"]),
                           "promotion.margin": safe_tag(params["promotion"]["margin"])})
        model = proj.module("train").train(train_df[features], train_df[target], params)
        evaluate = proj.module("evaluate").evaluate
        metrics = {k: float(v) for k, v in
                   evaluate(model, test_df[features], test_df[target]).items()}
        if "rmse" not in metrics:
            raise ProjectError(f"evaluate() must return an 'rmse' metric, got {sorted(metrics)}")
        mlflow.log_metrics(metrics)
        signature = infer_signature(train_df[features], model.predict(train_df[features][:5]))
        info = mlflow.sklearn.log_model(  # type: ignore[attr-defined]
            model, name="model", signature=signature,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
        return _Trained(info.model_uri, active.info.run_id, metrics)


def _champion_metrics(ws: Workspace, proj: Project, alias: str, best: ModelVersion | None,
                      test_df: pd.DataFrame, features: list[str], target: str
                      ) -> dict[str, float]:
    """The champion's metrics on the same held-out split ({} without a champion)."""
    if best is None:
        return {}
    try:
        best_model = load_pyfunc(ws, best)
    except Exception as exc:  # a flavour's loader raises anything on broken artifacts
        raise InputError(f"the {alias} version {best.uri} ({best.source}) cannot be "
                         f"loaded to compare with: {type(exc).__name__}: {exc}") from None
    evaluate = proj.module("evaluate").evaluate
    return {k: float(v) for k, v in
            evaluate(best_model, test_df[features], test_df[target]).items()}


def _register(ws: Workspace, proj: Project, trained: _Trained, tags: dict[str, str],
              promoted: bool, reason: str, alias: str, best: ModelVersion | None) -> int:
    """Register the candidate as a new version; ``staging`` moves to it when promoted."""
    c = client(ws)
    if c.search_registered_models(f"name = '{proj.model_name}'") == []:
        c.create_registered_model(proj.model_name)
    version_tags = {**tags, "batchscore.decision": "promoted" if promoted else "not promoted",
                    "batchscore.reason": safe_tag(reason),
                    **{f"metric.{k}": f"{v:.6g}" for k, v in trained.metrics.items()}}
    if best is not None:
        version_tags["batchscore.compared_with"] = str(best.version)
        version_tags["batchscore.compared_with_alias"] = alias
    mv = c.create_model_version(proj.model_name, trained.model_uri, run_id=trained.mlflow_run,
                                tags=version_tags)
    if promoted:
        c.set_registered_model_alias(proj.model_name, "staging", mv.version)
    return int(mv.version)
