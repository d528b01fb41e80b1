"""Model and data assets, and the references a deployment or job YAML uses for them.

Model assets (``batchscore model create``, the ``az ml model create`` equivalent) are versions
of the workspace's MLflow registry: the files are logged as the artifacts of a run of the
``batchscore-model-assets`` experiment (so they live in the registry's artifact store, the
system store's ``mlflow/`` folder by default) and the version's tags say the Azure type
(``azureml.type``: ``custom_model`` or ``mlflow_model``) and version (``azureml.version``).
Models registered otherwise (train-evaluate-register) are ``mlflow_model`` versions.

A model reference in a YAML is one of ``azureml:NAME@latest``, ``azureml:NAME@LABEL`` (an
MLflow alias), ``azureml:NAME:VERSION`` (the Azure version, else the MLflow version number),
a ``{name, version}`` mapping, ``models:/NAME[/VERSION|@ALIAS]``, or a path (a mapping with
``path``). The spec keeps it as written (its syntax is :mod:`batchscore.jobs.refs`'s);
:func:`resolve_model` turns it into the location of the model's files when a job is submitted
(:func:`prepare_job`, the engine's ``prepare`` hook).

Data assets (``batchscore data create``) are records of a path (kept where it is: local paths
are made absolute, URLs stay) under ``assets/data/<name>/<version>.json`` in the system store;
``--input azureml:NAME@latest`` (or ``azureml:NAME:VERSION``) resolves to that path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fsspec.core import url_to_fs

from ..errors import InputError, ModelNotFoundError, SpecError
from ..jobs.refs import (
    ASSET_IGNORED,
    MODEL_KEYS,
    check_name,
    check_version,
    is_model_ref,
    parse_azureml,
)
from ..jobs.spec import read_yaml_mapping
from ..storage import to_url
from ..workspace import machine_dir
from .models import (
    ModelVersion,
    artifact_location,
    client,
    get_version,
    list_models,
    registry_uri,
    use_registry,
)

if TYPE_CHECKING:
    from ..jobs.spec import JobSpec
    from ..workspace import Workspace

__all__ = [
    "DRIVER",
    "MODEL_TYPES",
    "DataAsset",
    "ResolvedModel",
    "get_data",
    "list_data",
    "load_asset_yaml",
    "prepare_job",
    "prepare_spec",
    "register_data",
    "register_model",
    "resolve_input",
    "resolve_model",
]

MODEL_TYPES = ("custom_model", "mlflow_model")
DATA_TYPES = ("uri_folder", "uri_file")
TYPE_TAG = "azureml.type"
VERSION_TAG = "azureml.version"
EXPERIMENT = "batchscore-model-assets"
DRIVER = Path(__file__).with_name("mlflow_driver.py")  # the script of MLflow deployments
_FSSPEC_SCHEMES = ("file", "az", "abfs", "abfss", "s3", "gs", "gcs", "memory")


# -- YAML asset files ------------------------------------------------------------------------

_DATA_KEYS = {"name", "version", "path", "type", "description", "tags"}


def load_asset_yaml(path: Path, kind: str) -> dict[str, Any]:
    """A ``model.yml`` or ``data.yml`` (Azure's model / data schema) as a mapping, its
    ``path`` made absolute against the file's folder (URLs stay)."""
    raw = read_yaml_mapping(path, kind)
    allowed = MODEL_KEYS if kind == "model" else _DATA_KEYS
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ASSET_IGNORED:
            continue
        if key not in allowed:
            raise SpecError(f"{kind} file {str(path)!r}: unknown key {key!r} (known: "
                            f"{', '.join(sorted(allowed))})")
        out[key] = value
    if out.get("path") is not None and "://" not in str(out["path"]):
        out["path"] = str((path.parent / str(out["path"])).resolve())
    if out.get("tags") is not None and not isinstance(out["tags"], dict):
        raise SpecError(f"{kind} file {str(path)!r}: tags must be a mapping")
    return out


# -- model assets ----------------------------------------------------------------------------

def _azure_version(v: ModelVersion) -> str:
    return v.tags.get(VERSION_TAG) or str(v.version)


def model_type(v: ModelVersion) -> str:
    """``custom_model`` or ``mlflow_model`` (versions registered by MLflow itself)."""
    return v.tags.get(TYPE_TAG) or "mlflow_model"


def register_model(ws: Workspace, name: str, path: str, *, type: str = "custom_model",
                   version: str | None = None, description: str | None = None,
                   tags: dict[str, str] | None = None) -> ModelVersion:
    """Register the folder or file ``path`` as a new version of model ``name``."""
    from mlflow.exceptions import MlflowException

    check_name(name, "model")
    if type not in MODEL_TYPES:
        raise SpecError(f"model type {type!r} is not one of {', '.join(MODEL_TYPES)}")
    if not path:
        raise SpecError("model path is empty; give the model's folder or file (--path)")
    if "://" in path:
        raise SpecError(f"model path {path!r} is a URL; give a local folder or file")
    src = Path(path).resolve()
    if not src.exists():
        raise SpecError(f"model path {path!r} does not exist")
    if type == "mlflow_model" and not (src.is_dir() and (src / "MLmodel").is_file()):
        raise SpecError(f"model path {path!r} is not an MLflow model (a folder with an "
                        "MLmodel file); register it as --type custom_model")
    c = client(ws)
    existing: list[ModelVersion] = []
    if c.search_registered_models(f"name = '{name}'"):
        existing = list_models(ws, name)
    if version is not None:
        version = check_version(version, "model")
        if any(_azure_version(v) == version for v in existing):
            raise SpecError(f"model {name!r} has a version {version} already; versions are "
                            f"{', '.join(_azure_version(v) for v in existing)}")
    else:
        numbers = [int(_azure_version(v)) for v in existing if _azure_version(v).isdigit()]
        version = str(max([*numbers, len(existing)], default=0) + 1)
    experiment = c.get_experiment_by_name(EXPERIMENT)
    experiment_id = (experiment.experiment_id if experiment is not None else
                     c.create_experiment(EXPERIMENT, artifact_location=artifact_location(ws)))
    run = c.create_run(experiment_id, tags={"azureml.model": name})
    run_id = run.info.run_id
    try:
        if src.is_dir():
            c.log_artifacts(run_id, str(src), artifact_path=src.name)
        else:
            c.log_artifact(run_id, str(src))
    except (OSError, MlflowException) as exc:
        c.set_terminated(run_id, "FAILED")
        raise InputError(f"cannot copy model {path!r} into the registry: {exc}") from None
    c.set_terminated(run_id)
    if not existing:
        c.create_registered_model(name)
    all_tags = {**{str(k): str(v) for k, v in (tags or {}).items()},
                TYPE_TAG: type, VERSION_TAG: version}
    mv = c.create_model_version(name, f"{run.info.artifact_uri.rstrip('/')}/{src.name}",
                                run_id=run_id, tags=all_tags, description=description)
    return get_version(ws, f"{name}/{mv.version}")


@dataclass(frozen=True)
class ResolvedModel:
    """A registered model version and where its files are (a local path or a URL)."""

    ref: str
    name: str
    version: int
    azure_version: str
    type: str
    location: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _pick(ws: Workspace, ref: str) -> ModelVersion:
    if ref.startswith("models:/"):
        return get_version(ws, ref)
    name, label, version = parse_azureml(ref)
    versions = list_models(ws, name)  # an unknown name names the models that exist
    if not versions:
        raise ModelNotFoundError(f"model {name!r} has no versions yet")
    if label == "latest":
        return versions[-1]
    if label is not None:
        found = [v for v in versions if label in v.aliases]
        if not found:
            labels = sorted({a for v in versions for a in v.aliases} | {"latest"})
            raise ModelNotFoundError(f"model {name!r} has no version labelled {label!r}; "
                                     f"labels are {', '.join(labels)}")
        return found[0]
    exact = [v for v in versions if _azure_version(v) == version]
    if not exact and version is not None and version.isdigit():
        exact = [v for v in versions if v.version == int(version)]
    if not exact:
        raise ModelNotFoundError(f"model {name!r} has no version {version}; versions are "
                                 f"{', '.join(_azure_version(v) for v in versions)}")
    return exact[-1]


def resolve_model(ws: Workspace, ref: str) -> ResolvedModel:
    """The registered version ``ref`` names and where its files are. An unknown name,
    version or label is a :class:`ModelNotFoundError` naming what exists."""
    v = _pick(ws, ref)
    location = client(ws).get_model_version_download_uri(v.name, str(v.version))
    scheme = urlsplit(location).scheme  # runs:/RUN/model has a scheme and no "://"
    if not scheme or location.startswith("/") or scheme in _FSSPEC_SCHEMES:
        location = to_url(location)
    else:  # runs:/, models:/, mlflow-artifacts:/...: fetched once into this machine's cache
        location = _download(ws, v, location)
    return ResolvedModel(ref, v.name, v.version, _azure_version(v), model_type(v), location)


def _download(ws: Workspace, v: ModelVersion, uri: str) -> str:
    """The version's files, downloaded once into this user's cache on this machine. The
    cache is keyed by the registry and the version's identity (source and creation time),
    not by name and number alone: version 1 of ``m`` in another workspace, or in this one
    after its registry was made again, is another model."""
    import mlflow

    identity = "\0".join([registry_uri(ws), v.name, str(v.version), v.source, repr(v.created_at)])
    key = hashlib.sha256(identity.encode()).hexdigest()[:32]
    root = machine_dir("registry")
    target = root / key
    if not target.exists():  # made whole by one rename: never seen half-downloaded
        use_registry(ws)
        root.mkdir(exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(build / v.name))
            try:
                build.rename(target)
            except OSError:  # another process made it first
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return to_url(str(target / v.name))


def is_mlflow_model(location: str) -> bool:
    """A folder holding an ``MLmodel`` file (local path or URL)."""
    fs, path = url_to_fs(to_url(location))
    return bool(fs.exists(f"{path.rstrip('/')}/MLmodel"))


def prepare_spec(ws: Workspace, spec: JobSpec) -> JobSpec:
    """An entry-script spec ready to run: a registry reference in ``model_dir`` resolved to
    the version's files (``options.model_ref`` records what it named), a deployment of an
    MLflow model without a scoring script given the built-in MLflow driver, and its
    environment (``env_manager``) chosen and built."""
    if spec.kind != "script":
        return spec
    update: dict[str, Any] = {}
    model_dir = spec.model_dir
    if model_dir and is_model_ref(model_dir):
        resolved = resolve_model(ws, model_dir)
        update["model_dir"] = resolved.location
        update["options"] = {**spec.options,
                             "model_ref": f"{model_dir} -> {resolved.uri}"}
        model_dir = resolved.location
    if spec.scoring_script is None and model_dir:
        if not is_mlflow_model(model_dir):
            raise SpecError(
                f"the deployment has no scoring script (code_configuration) and its model "
                f"{spec.model_dir!r} is not an MLflow model (no MLmodel file): only MLflow "
                "models deploy without a scoring script")
        update["scoring_script"] = str(DRIVER)
        update["code"] = None
    update.update(_environment(ws, spec, model_dir, update.get("scoring_script") == str(DRIVER)))
    return spec.model_copy(update=update) if update else spec


def _environment(ws: Workspace, spec: JobSpec, model_dir: str | None, driver: bool
                 ) -> dict[str, Any]:
    """``env_manager`` and ``requirements`` of the job: the spec's own (a flag or key), else
    the workspace's setting (``executor.env_manager``) for a job that names an environment
    (a conda file, or an MLflow model's requirements; local otherwise). A virtualenv is
    built now: a requirement that cannot be installed fails before a job is recorded."""
    from .envs import build_env, mlflow_requirements

    update: dict[str, Any] = {}
    requirements = list(spec.requirements)
    if not requirements and driver and model_dir and to_url(model_dir).startswith("file://"):
        requirements = mlflow_requirements(Path(url_to_fs(to_url(model_dir))[1]))
    manager = spec.env_manager
    if manager is None:
        named = bool(requirements) or bool(spec.options.get("environment_error"))
        manager = ws.settings.env_manager if named else "local"
        update["env_manager"] = manager
    if manager != "virtualenv":
        return update
    if spec.options.get("environment_error"):
        raise SpecError(str(spec.options["environment_error"]))
    if requirements != list(spec.requirements):
        update["requirements"] = requirements
    build_env(requirements)
    return update


# -- data assets -----------------------------------------------------------------------------

@dataclass(frozen=True)
class DataAsset:
    name: str
    version: str
    type: str
    path: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _data_prefix(name: str) -> str:
    return f"assets/data/{check_name(name, 'data asset')}"


def list_data(ws: Workspace, name: str | None = None) -> list[DataAsset]:
    """Every version of data asset ``name`` (or of every data asset), oldest first."""
    names = [name] if name is not None else sorted(
        {rel.split("/")[2] for rel in ws.system.list("assets/data") if rel.count("/") == 3})
    out: list[DataAsset] = []
    for n in names:
        prefix = _data_prefix(n)
        found = [DataAsset(**json.loads(ws.system.read_text(rel)))
                 for rel in ws.system.list(prefix) if rel.endswith(".json")]
        out.extend(sorted(found, key=lambda a: a.created_at))
    if name is not None and not out:
        known = sorted({a.name for a in list_data(ws)})
        raise InputError(f"no data asset named {name!r}; data assets are "
                         f"{', '.join(known) if known else '(none yet: batchscore data create)'}")
    return out


def register_data(ws: Workspace, name: str, path: str, *, type: str = "uri_folder",
                  version: str | None = None, description: str | None = None,
                  tags: dict[str, str] | None = None) -> DataAsset:
    """Record data asset ``name`` (a new version) pointing at ``path``."""
    prefix = _data_prefix(name)
    if type not in DATA_TYPES:
        raise SpecError(f"data type {type!r} is not one of {', '.join(DATA_TYPES)} "
                        "(mltable is not supported)")
    if not path:
        raise SpecError("data path is empty (--path)")
    if "://" not in path:
        local = Path(path).resolve()
        if type == "uri_folder" and not local.is_dir():
            raise SpecError(f"data path {path!r} is not a folder (type uri_folder)")
        if type == "uri_file" and not local.is_file():
            raise SpecError(f"data path {path!r} is not a file (type uri_file)")
        path = str(local)
    existing = list_data(ws, name) if ws.system.list(prefix) else []
    if version is None:
        numbers = [int(a.version) for a in existing if a.version.isdigit()]
        version = str(max(numbers, default=0) + 1)
    version = check_version(version, "data asset")
    if any(a.version == version for a in existing):
        raise SpecError(f"data asset {name!r} has a version {version} already; versions are "
                        f"{', '.join(a.version for a in existing)}")
    asset = DataAsset(name, version, type, path, description or "",
                      {str(k): str(v) for k, v in (tags or {}).items()}, time.time())
    ws.system.write_text(f"{prefix}/{version}.json", json.dumps(asset.to_dict()))
    return asset


def get_data(ws: Workspace, ref: str) -> DataAsset:
    """``NAME`` / ``NAME@latest`` / ``NAME:VERSION`` (``azureml:`` optional)."""
    text = ref.removeprefix("azureml:")
    name, version = text, None
    if "@" in text:
        name, _, label = text.partition("@")
        if label != "latest":
            raise InputError(f"data reference {ref!r}: the only label of a data asset is "
                             "latest")
    elif ":" in text:
        name, _, version = text.partition(":")
    versions = list_data(ws, name)
    if version is None:
        return versions[-1]
    found = [a for a in versions if a.version == version]
    if not found:
        raise InputError(f"data asset {name!r} has no version {version}; versions are "
                         f"{', '.join(a.version for a in versions)}")
    return found[0]


def resolve_input(ws: Workspace, value: str) -> str:
    """An input as given, or the path of the data asset ``azureml:NAME@latest`` names."""
    if not value.startswith("azureml:") or value.startswith("azureml://"):
        return value
    return get_data(ws, value).path


def prepare_job(ws: Workspace, spec: JobSpec, inputs: Sequence[str]
                ) -> tuple[JobSpec, list[str]]:
    """The ``prepare`` hook of :mod:`batchscore.jobs.hooks`, called when a job is submitted:
    the spec ready to run (:func:`prepare_spec`) and its data-asset inputs as their paths."""
    return prepare_spec(ws, spec), [resolve_input(ws, value) for value in inputs]
