"""Models of tabular jobs: references, resolution, loading, and each worker's cache.

A reference is one of:

- ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME`` (its latest version):
  a version in an MLflow model registry, loaded with ``mlflow.pyfunc``;
- a folder or file path or URL: a folder with an ``MLmodel`` file (``mlflow.pyfunc``), or a
  folder holding ``model.joblib`` / ``model.pkl``, or such a file itself (joblib, e.g. a
  scikit-learn Pipeline).

With ``group_by`` the reference may hold ``{Column}`` placeholders, filled with each group's
values (:func:`group_ref`); without placeholders it is a folder with one model per group in
hive layout (``<folder>/Device=1/Sensor=4/``).

Group values are data, never paths: a value that is not a plain name (empty, ``.``, ``..``,
a ``/`` or ``\\``, a control character) names no model, so its rows are rejected
(:func:`group_value_problem`); and a template's models are loaded only from inside its fixed
folder (:func:`template_root`), checked on the resolved path, symbolic links followed
(:class:`ModelLoader` ``roots``). A reference that names nothing raises
:class:`ModelNotFoundError`; the worker's :class:`ModelCache` remembers those, and reports
the group's rows as rejected.

What a model expects is read from it: the MLflow signature's input columns (names, types,
whether required), else scikit-learn's ``feature_names_in_``; and whether it accepts missing
values (scikit-learn's ``allow_nan`` tag).
"""

from __future__ import annotations

import os
import pickle
import posixpath
import shutil
import string
import tempfile
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pandas as pd
from fsspec.core import url_to_fs

from ..errors import InputError, ModelNotFoundError, SpecError
from ..storage import local_copy, to_url

__all__ = [
    "ColumnSpec",
    "LoadedModel",
    "ModelCache",
    "ModelLoader",
    "ModelNotFoundError",
    "group_ref",
    "group_value_problem",
    "hive_ref",
    "placeholders",
    "plain_value",
    "template_root",
]

REGISTRY_PREFIX = "models:/"
MLMODEL = "MLmodel"
PICKLES = ("model.joblib", "model.pkl")
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass(frozen=True)
class ColumnSpec:
    """One input column a model declares: its name, its type (an MLflow data type name:
    double, float, long, integer, boolean, string, datetime, binary; ``any`` when not a
    plain one) and whether a value is required."""

    name: str
    type: str
    required: bool = True


@dataclass
class LoadedModel:
    """A model ready to score: its ``predict`` and what it expects."""

    ref: str
    predict: Callable[[pd.DataFrame], Any]
    columns: list[ColumnSpec] | None = None  # declared by an MLflow signature
    feature_names: list[str] | None = None  # scikit-learn's feature_names_in_
    allow_nan: bool = False
    kind: str = "sklearn"  # "pyfunc" or "sklearn" (joblib / pickle)
    raw: Any = field(default=None, repr=False)

    @property
    def features(self) -> list[str] | None:
        """The input columns the model names, in its order (None: it names none)."""
        if self.columns is not None:
            return [c.name for c in self.columns]
        return list(self.feature_names) if self.feature_names is not None else None


# -- references ------------------------------------------------------------------------------

def placeholders(template: str) -> list[str]:
    """The ``{Column}`` placeholders of a model reference, in order, without repeats."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SpecError(f"options.model {template!r}: not a valid template: {exc}") from None
    names: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or any(ch in name for ch in ".[]"):
            raise SpecError(f"options.model {template!r}: placeholders name group_by columns, "
                            f"as in {{Device}}; got {{{name}}}")
        if name not in names:
            names.append(name)
    return names


def plain_value(value: Any) -> Any:
    """A group value as a plain Python value (2.0 read from a CSV column with gaps is 2);
    None for a missing value."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def group_value_problem(value: Any) -> str | None:
    """Why a group value cannot fill a placeholder of a model reference (None: it can).

    A value must be a plain name: not empty or blank, not ``.`` or ``..``, without ``/``,
    ``\\`` or control characters (NUL, newlines, DEL, ...); in a registry reference not
    ``@`` either (it would choose another alias)."""
    text = str(plain_value(value))
    if not text.strip():
        return "it is empty"
    if text in (".", ".."):
        return f"{text!r} names a folder, not a model"
    for ch in text:
        if ch in "/\\":
            return f"it holds the path separator {ch!r}"
        if ord(ch) < 32 or 127 <= ord(ch) < 160:
            return f"it holds the control character {ch!r}"
    return None


def _bad_value(column: str, value: Any, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"group value {str(plain_value(value))!r} of column {column} is "
                              f"not a plain name ({why}); it cannot name a model")


def group_ref(template: str, values: dict[str, Any]) -> str:
    """The reference of one group's model: ``template`` with its placeholders filled.

    A value that is not a plain name (:func:`group_value_problem`) raises
    :class:`ModelNotFoundError`: rows never choose a model outside the template's folder."""
    registry = template.startswith(REGISTRY_PREFIX)
    for column, value in values.items():
        why = group_value_problem(value)
        if why is None and registry and "@" in str(plain_value(value)):
            why = "it holds '@'"
        if why is not None:
            raise _bad_value(column, value, why)
    return template.format_map({k: plain_value(v) for k, v in values.items()})


def template_root(template: str) -> str | None:
    """The fixed folder a path template's models are in: the part before its first
    placeholder, up to the last ``/`` (``/models/dev-{Device}`` -> ``/models``); None for a
    registry reference. A template with no fixed folder is a :class:`SpecError`."""
    if template.startswith(REGISTRY_PREFIX):
        return None
    head = template.split("{", 1)[0]
    root = head.rsplit("/", 1)[0] if "/" in head else ""
    if "://" in template:
        scheme_end = template.index("://") + 3
        bare = root[scheme_end:].strip("/") if len(root) >= scheme_end else ""
    else:
        bare = root.strip("/")
    if not bare:
        raise SpecError(f"options.model {template!r}: a {{Column}} placeholder must come after "
                        "a fixed folder that holds the models (as in /models/dev-{Device})")
    return root


def hive_ref(folder: str, values: dict[str, Any]) -> str:
    """The folder of one group's model in hive layout: ``<folder>/Device=1/Sensor=4``
    (values percent-encoded as in pyarrow's hive partitioning, so a value is always inside
    its ``Column=`` folder)."""
    parts = [f"{k}={quote(str(plain_value(v)), safe='')}" for k, v in values.items()]
    return "/".join([folder.rstrip("/"), *parts])


def _parse_registry_ref(ref: str) -> tuple[str, str | None, int | None]:
    text = ref[len(REGISTRY_PREFIX):].strip("/")
    if "@" in text:
        name, _, alias = text.partition("@")
        if name and alias and "/" not in name:
            return name, alias, None
    elif "/" in text:
        name, _, number = text.partition("/")
        if name and number.isdigit():
            return name, None, int(number)
        if name and number == "latest":
            return name, None, None
    elif text:
        return text, None, None
    raise SpecError(f"model reference {ref!r} must be models:/NAME@ALIAS, models:/NAME/VERSION "
                    "or models:/NAME")


def default_registry_uri(explicit: str | None) -> str | None:
    """``explicit`` (options.registry_uri), else ``$MLFLOW_TRACKING_URI``."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or None


# -- loading ---------------------------------------------------------------------------------

class ModelLoader:
    """Resolves and loads references in one process (a worker, or the driver at submit).

    With ``roots``, a path reference is loaded only when it resolves (``..`` and symbolic
    links followed) inside one of those folders; anything else is :class:`ModelNotFoundError`.
    """

    def __init__(self, registry_uri: str | None, scratch: str | Path | None = None,
                 roots: list[str] | None = None) -> None:
        self.roots = [to_url(r) for r in roots] if roots is not None else None
        self.registry_uri = registry_uri
        self._scratch = Path(scratch) if scratch else None
        self._client: Any = None
        self._downloads: dict[str, str] = {}

    @property
    def scratch(self) -> Path:
        """Where registry and remote models are copied: the folder given (made when first
        needed), else a temporary one made when first needed and removed with the loader
        (resolving a reference, as a job's submit does, makes none)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="batchscore-models-"))
            weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch

    # registry ---------------------------------------------------------------------------
    def _registry(self, ref: str) -> Any:
        if self.registry_uri is None:
            raise SpecError(
                f"model {ref!r} is in a model registry, but no registry is set: give "
                "options.registry_uri or set MLFLOW_TRACKING_URI")
        if self._client is None:
            try:
                from mlflow import MlflowClient
            except ImportError:
                raise SpecError(f"model {ref!r} needs MLflow: install batchscore[mlops]"
                                ) from None
            self._client = MlflowClient(tracking_uri=self.registry_uri,
                                        registry_uri=self.registry_uri)
        return self._client

    def resolve(self, ref: str) -> str:
        """A registry reference as ``models:/NAME/VERSION`` (the version an alias or
        "latest" points at now); any other reference as it is, once it is known to exist."""
        if not ref.startswith(REGISTRY_PREFIX):
            self._find(ref)
            return ref
        from mlflow.exceptions import MlflowException

        name, alias, version = _parse_registry_ref(ref)
        client = self._registry(ref)
        try:
            if alias is not None:
                found = client.get_model_version_by_alias(name, alias).version
            elif version is not None:
                found = client.get_model_version(name, str(version)).version
            else:
                escaped = name.replace("'", "\\'")
                versions = [int(v.version) for v in
                            client.search_model_versions(f"name = '{escaped}'")]
                if not versions:
                    raise ModelNotFoundError(f"model {ref} has no versions in the registry "
                                             f"{self._where()}")
                found = max(versions)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise ModelNotFoundError(
                    f"model {ref} does not resolve in the registry {self._where()}: "
                    f"{exc.message}") from None
            raise InputError(f"model {ref}: the registry {self._where()} failed: "
                             f"{exc.message}") from None
        return f"{REGISTRY_PREFIX}{name}/{found}"

    def _where(self) -> str:
        from ..io.sql import is_database_url
        from ..redact import safe_url

        uri = self.registry_uri or "?"
        return safe_url(uri) if is_database_url(uri) else uri

    def load(self, ref: str) -> LoadedModel:
        """Load the model ``ref`` names (raises :class:`ModelNotFoundError` when it names
        none)."""
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # a model's warnings go to the worker's log
            if ref.startswith(REGISTRY_PREFIX):
                pinned = self.resolve(ref)
                name, _, version = _parse_registry_ref(pinned)
                client = self._registry(ref)
                try:
                    uri = client.get_model_version_download_uri(name, str(version))
                    local = self._download(uri)
                except Exception as exc:  # an artifact store that is gone or unreachable
                    raise InputError(f"model {ref}: its artifacts cannot be read: "
                                     f"{type(exc).__name__}: {exc}") from None
                model = _load_pyfunc(local, ref)
            else:
                kind, local = self._find(ref, download=True)
                model = _load_pyfunc(local, ref) if kind == "pyfunc" else _load_pickle(local, ref)
        return model

    def _download(self, uri: str) -> str:
        # a path or file:// URL is read in place; any other scheme through MLflow, runs:/ too
        # (MLflow 2 hands back a version's source as given: runs:/RUN/model has no "://")
        if urlsplit(uri).scheme in ("", "file"):
            return url_to_fs(to_url(uri))[1]
        if uri not in self._downloads:
            import mlflow

            target = tempfile.mkdtemp(prefix="registry-", dir=self.scratch)
            where: dict[str, str] = {"artifact_uri": uri}
            if uri.startswith("runs:/"):  # by run id: MLflow 2 reads an artifact_uri's run
                run_id, _, path = uri.removeprefix("runs:/").partition("/")  # in the global
                where = {"run_id": run_id, "artifact_path": path}  # store, not in this one
            self._downloads[uri] = mlflow.artifacts.download_artifacts(
                dst_path=target, tracking_uri=self.registry_uri, **where)
        return self._downloads[uri]

    def _inside_roots(self, ref: str, url: str, path: str) -> str:
        """``path`` resolved, if it is inside one of ``roots``; else ModelNotFoundError."""
        assert self.roots is not None
        local = url.startswith("file://")
        resolved = os.path.realpath(path) if local else posixpath.normpath(path)
        for root in self.roots:
            if root.split("://", 1)[0] != url.split("://", 1)[0]:
                continue
            base = url_to_fs(root)[1].rstrip("/") or "/"
            base = os.path.realpath(base) if local else posixpath.normpath(base)
            if resolved == base or resolved.startswith(base.rstrip("/") + "/"):
                return resolved
        raise ModelNotFoundError(f"model {ref} resolves to {resolved}, outside the model "
                                 f"folder(s) of this job ({', '.join(self.roots)})")

    def _find(self, ref: str, download: bool = False) -> tuple[str, str]:
        """What kind of model a path reference holds, and (with ``download``) a local path
        to load it from."""
        url = to_url(ref)
        try:
            fs, path = url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise ModelNotFoundError(f"model {ref!r}: {exc}") from None
        path = path.rstrip("/")
        if self.roots is not None:
            path = self._inside_roots(ref, url, path)
        if not fs.exists(path):
            raise ModelNotFoundError(f"model {ref} does not exist")
        if fs.isdir(path):
            if fs.exists(f"{path}/{MLMODEL}"):
                kind, rel = "pyfunc", ""
            else:
                rel = next((p for p in PICKLES if fs.exists(f"{path}/{p}")), "")
                if not rel:
                    raise ModelNotFoundError(
                        f"model folder {ref} holds no {MLMODEL}, {' or '.join(PICKLES)}")
                kind = "pickle"
        elif path.lower().endswith(_PICKLE_SUFFIXES):
            kind, rel = "pickle", ""
        else:
            raise ModelNotFoundError(
                f"model {ref} is neither a model folder ({MLMODEL}, {' or '.join(PICKLES)}) "
                f"nor a {', '.join(_PICKLE_SUFFIXES)} file")
        if self.roots is not None and rel and url.startswith("file://"):
            self._inside_roots(f"{ref}/{rel}", url, f"{path}/{rel}")  # a link out of it
        if not download:
            return kind, path
        if url.startswith("file://"):
            local = path
        else:
            local = local_copy(url, self.scratch / "files", recursive=fs.isdir(path))
        return kind, f"{local}/{rel}" if rel else local


def _unloadable(path: str, ref: str, exc: BaseException) -> InputError:
    """The error of a model whose loader failed: where it is and the loader's own error."""
    if ref.startswith(REGISTRY_PREFIX):
        where = f"model {ref}"
    else:
        where = f"model folder {path}" if os.path.isdir(path) else f"model {path}"
    return InputError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}")


def _load_pickle(path: str, ref: str) -> LoadedModel:
    try:
        if path.lower().endswith(".joblib"):
            import joblib

            model = joblib.load(path)
        else:
            try:
                import joblib

                model = joblib.load(path)
            except ImportError:
                with open(path, "rb") as fh:
                    model = pickle.load(fh)  # nosec B301  # admin-registered model
    except ImportError as exc:
        raise InputError(f"model {ref}: loading it needs {exc.name}: install it in the "
                         "workers' environment (batchscore[mlops] brings scikit-learn)"
                         ) from None
    except Exception as exc:  # a loader raises anything on a broken file
        raise _unloadable(path, ref, exc) from None
    predict = getattr(model, "predict", None)
    if not callable(predict):
        raise InputError(f"model {ref}: a {type(model).__name__} has no predict() method")
    names = getattr(model, "feature_names_in_", None)
    return LoadedModel(ref=ref, predict=predict,
                       feature_names=[str(n) for n in names] if names is not None else None,
                       allow_nan=_allows_nan(model), kind="sklearn", raw=model)


def _load_pyfunc(path: str, ref: str) -> LoadedModel:
    try:
        import mlflow.pyfunc
    except ImportError:
        raise SpecError(f"model {ref} is an MLflow model: install batchscore[mlops]") from None
    try:
        model = mlflow.pyfunc.load_model(path)
    except Exception as exc:  # a flavour's loader raises anything on a broken folder
        raise _unloadable(path, ref, exc) from None
    columns = None
    schema = model.metadata.get_input_schema()
    if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
        columns = [ColumnSpec(str(c.name), _type_name(c.type), bool(getattr(c, "required",
                                                                           True)))
                   for c in schema.inputs]
    raw = None
    try:
        raw = model.get_raw_model()
    except Exception:  # not every flavour has one
        raw = None
    names = getattr(raw, "feature_names_in_", None) if raw is not None else None
    return LoadedModel(ref=ref, predict=model.predict, columns=columns,
                       feature_names=[str(n) for n in names] if names is not None else None,
                       allow_nan=_allows_nan(raw), kind="pyfunc", raw=raw)


def _type_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None)
    if name in {"double", "float", "long", "integer", "boolean", "string", "datetime",
                "binary"}:
        return str(name)
    return "any"


def _allows_nan(model: Any) -> bool:
    """scikit-learn's ``allow_nan`` tag: ``get_tags`` (1.6+), else the older ``_get_tags()``
    dict (the core allows any scikit-learn a user's environment holds, e.g. 1.1)."""
    if model is None:
        return False
    try:
        from sklearn.utils import get_tags
    except ImportError:  # scikit-learn < 1.6 (or none)
        old_tags = getattr(model, "_get_tags", None)
        try:
            return bool(old_tags().get("allow_nan", False)) if callable(old_tags) else False
        except Exception:  # a foreign object with a _get_tags of its own
            return False
    try:
        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # not a scikit-learn estimator
        return False


# -- the per-worker cache --------------------------------------------------------------------

class ModelCache:
    """The models a worker has loaded, least recently used dropped beyond ``capacity``;
    references that name no model are remembered (with why) and not looked up again."""

    def __init__(self, loader: ModelLoader, capacity: int) -> None:
        self.loader = loader
        self.capacity = max(1, capacity)
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self.missing: dict[str, str] = {}
        self.loads = 0

    def get(self, ref: str) -> LoadedModel | None:
        """The model ``ref`` names, or None when it names none (``missing[ref]`` says why)."""
        if ref in self._models:
            self._models.move_to_end(ref)
            return self._models[ref]
        if ref in self.missing:
            return None
        try:
            model = self.loader.load(ref)
        except ModelNotFoundError as exc:
            self.missing[ref] = str(exc)
            return None
        self.loads += 1
        self._models[ref] = model
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        return model
