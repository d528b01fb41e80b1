"""The model registry: MLflow's, embedded in the workspace by default.

Embedded default: the registry and tracking database is ``<workspace>/mlflow.db`` (SQLite; a
file of its own, since MLflow and the state database both keep Alembic's ``alembic_version``
table) and artifacts live under the system store's ``mlflow/`` folder. When the environment
variable ``MLFLOW_TRACKING_URI`` is set, that tracking server (or database) is used instead.

A version is named ``NAME`` (its latest version), ``NAME/VERSION`` or ``NAME@ALIAS``. The
aliases batchscore moves are ``staging`` (set by train-evaluate-register when a candidate
beats production) and ``production`` (set by :func:`promote`); every promotion is appended
to the model's ``batchscore.production_history`` tag so that :func:`rollback` can restore
the version that was in production before. :func:`production_state` and
:func:`restore_production` take and put back the alias and that history exactly (the release
pipeline undoes a promotion whose production smoke test fails with them).

No credential reaches the registry through batchscore: tag values written by the pipelines
pass through :func:`safe_tag` (URL passwords and secret values masked).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ModelNotFoundError
from ..workspace import Workspace

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "ALIASES",
    "HISTORY_TAG",
    "ModelNotFoundError",
    "ModelVersion",
    "artifact_location",
    "client",
    "get_version",
    "list_models",
    "load_pyfunc",
    "parse_ref",
    "production_state",
    "promote",
    "registry_uri",
    "restore_production",
    "rollback",
    "rollback_target",
    "safe_tag",
    "use_registry",
]

ALIASES = ("staging", "production")
HISTORY_TAG = "batchscore.production_history"


def registry_uri(ws: Workspace) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the workspace's ``mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ws.settings.root / 'mlflow.db'}"


def use_registry(ws: Workspace) -> str:
    """Point this process's mlflow (tracking and registry) at the workspace's registry.

    ``mlflow.set_tracking_uri`` also exports ``$MLFLOW_TRACKING_URI`` for subprocesses; that
    would make the workspace's URI look like the user's choice to :func:`registry_uri` in
    this process and in every process it starts (another workspace's runner, a test), so
    the variable is put back as it was."""
    import mlflow

    uri = registry_uri(ws)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
    return uri


def artifact_location(ws: Workspace) -> str:
    """Where new experiments keep their artifacts: the system store's ``mlflow/`` folder."""
    return ws.system.url_of("mlflow")


def client(ws: Workspace) -> MlflowClient:
    from mlflow import MlflowClient

    uri = registry_uri(ws)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    source: str
    created_at: float
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "aliases": self.aliases,
                "tags": self.tags, "metrics": self.metrics, "run_id": self.run_id,
                "source": self.source, "created_at": self.created_at, "uri": self.uri}


def _version(mv: Any, aliases: dict[str, str]) -> ModelVersion:
    tags = dict(mv.tags or {})
    metrics = {k.removeprefix("metric."): float(v) for k, v in tags.items()
               if k.startswith("metric.")}
    return ModelVersion(name=mv.name, version=int(mv.version), aliases=sorted(
                            a for a, v in aliases.items() if str(v) == str(mv.version)),
                        tags=tags, run_id=mv.run_id, source=mv.source,
                        created_at=mv.creation_timestamp / 1000.0,
                        description=mv.description or "", metrics=metrics)


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION`` as (name, alias, version)."""
    text = ref.strip().removeprefix("models:/")
    if "@" in text:
        name, _, alias = text.partition("@")
        if not name or not alias:
            raise ModelNotFoundError(f"model reference {ref!r} must be NAME@ALIAS")
        return name, alias, None
    if "/" in text:
        name, _, number = text.partition("/")
        if not name or not number.isdigit():
            raise ModelNotFoundError(f"model reference {ref!r} must be NAME/VERSION (a number)")
        return name, None, int(number)
    if not text:
        raise ModelNotFoundError("model reference is empty; give NAME, NAME@ALIAS or "
                                 "NAME/VERSION")
    return text, None, None


def _registered(c: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in c.search_registered_models())
        raise ModelNotFoundError(
            f"no registered model named {name!r}; models are "
            f"{', '.join(known) if known else '(none yet)'}") from None


def _versions(c: MlflowClient, name: str) -> list[ModelVersion]:
    # search_model_versions leaves aliases out: they come from the registered model
    aliases = dict(c.get_registered_model(name).aliases or {})
    found = [_version(mv, aliases) for mv in c.search_model_versions(f"name = '{name}'")]
    return sorted(found, key=lambda v: v.version)


def list_models(ws: Workspace, name: str | None = None) -> list[ModelVersion]:
    """Every version of ``name`` (or of every model), oldest first."""
    c = client(ws)
    if name is not None:
        _registered(c, name)
        return _versions(c, name)
    out: list[ModelVersion] = []
    for model in sorted(c.search_registered_models(), key=lambda m: m.name):
        out.extend(_versions(c, model.name))
    return out


def load_pyfunc(ws: Workspace, version: ModelVersion) -> Any:
    """``version`` loaded as an MLflow pyfunc model. Files the registry keeps on this machine
    are read in place; others (``runs:/``, a remote artifact store) are downloaded into a
    private temporary folder that goes with the model (when it is collected, at the latest
    when the process exits), where MLflow alone would leave one copy per load."""
    import mlflow.pyfunc

    use_registry(ws)
    where = client(ws).get_model_version_download_uri(version.name, str(version.version))
    if urlsplit(where).scheme in ("", "file"):
        return mlflow.pyfunc.load_model(version.uri)
    folder = tempfile.mkdtemp(prefix="batchscore-model-")
    try:
        model = mlflow.pyfunc.load_model(version.uri, dst_path=folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(model, shutil.rmtree, folder, ignore_errors=True)
    return model


def get_version(ws: Workspace, ref: str) -> ModelVersion:
    """The version ``ref`` names (``NAME`` means its latest version)."""
    name, alias, number = parse_ref(ref)
    c = client(ws)
    _registered(c, name)
    versions = _versions(c, name)
    if alias is not None:
        found = [v for v in versions if alias in v.aliases]
        if not found:
            raise ModelNotFoundError(f"model {name!r} has no version with alias {alias!r}")
        return found[0]
    if number is not None:
        found = [v for v in versions if v.version == number]
        if not found:
            raise ModelNotFoundError(
                f"model {name!r} has no version {number}; versions are "
                f"{', '.join(str(v.version) for v in versions) or '(none)'}")
        return found[0]
    if not versions:
        raise ModelNotFoundError(f"model {name!r} has no versions yet")
    return versions[-1]


def alias_version(ws: Workspace, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``, or None (also when the model does not exist yet)."""
    try:
        return get_version(ws, f"{name}@{alias}")
    except ModelNotFoundError:
        return None


def _history(c: MlflowClient, name: str) -> list[int]:
    raw = (_registered(c, name).tags or {}).get(HISTORY_TAG)
    return [int(v) for v in json.loads(raw)] if raw else []


def production_state(ws: Workspace, name: str) -> tuple[int | None, list[int]]:
    """The version holding ``production`` (None: no version does) and the promotion history,
    to be put back by :func:`restore_production`."""
    current = alias_version(ws, name, "production")
    return (current.version if current is not None else None), _history(client(ws), name)


def restore_production(ws: Workspace, name: str, version: int | None,
                       history: list[int]) -> None:
    """Put back what :func:`production_state` returned: ``production`` on ``version`` (None:
    on no version) and the promotion history as it was."""
    c = client(ws)
    model = _registered(c, name)
    if version is None:
        if "production" in (model.aliases or {}):
            c.delete_registered_model_alias(name, "production")
    else:
        c.set_registered_model_alias(name, "production", str(version))
    if history:
        c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    elif HISTORY_TAG in (model.tags or {}):
        c.delete_registered_model_tag(name, HISTORY_TAG)


def safe_tag(value: object) -> str:
    """A tag or parameter value as text, with URL passwords and secret values masked
    (:func:`batchscore.redact.redact`)."""
    from ..redact import redact

    return redact(str(value))


def promote(ws: Workspace, name: str, version: int | None = None) -> ModelVersion:
    """Point ``production`` at ``version`` (default: the version holding ``staging``)."""
    c = client(ws)
    target = get_version(ws, f"{name}/{version}" if version is not None else f"{name}@staging")
    if "production" in target.aliases:
        return target
    history = _history(c, name)
    c.set_registered_model_alias(name, "production", str(target.version))
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, target.version]))
    return get_version(ws, f"{name}/{target.version}")


def rollback_target(ws: Workspace, name: str) -> int:
    """The version :func:`rollback` would restore; raises when there is none."""
    history = _history(client(ws), name)
    current = alias_version(ws, name, "production")
    if current is None:
        raise ModelNotFoundError(f"model {name!r} has no production version to roll back")
    if len(history) < 2:
        raise ModelNotFoundError(
            f"model {name!r} has no earlier production version to roll back to (production "
            f"is version {current.version}, the first ever promoted)")
    return history[-2]


def rollback(ws: Workspace, name: str) -> ModelVersion:
    """Restore the version that was in production before the current one."""
    c = client(ws)
    previous = rollback_target(ws, name)
    history = _history(c, name)
    c.set_registered_model_alias(name, "production", str(previous))
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    return get_version(ws, f"{name}/{previous}")
