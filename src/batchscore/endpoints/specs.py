"""The job spec an endpoint or a deployment holds: built from ``--model``, checked before it
is recorded (the same checks for both), and made ready for the workers.

A model is either a registry reference (``models:/NAME@ALIAS``, resolved by the registry) or
a folder an admin keeps outside the stores (:func:`check_model_location`); a folder may be a
template (``{column}`` parts, one model per group of rows).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..jobs.kinds import get_kind
from ..jobs.spec import JobSpec, spec_from_mapping
from ..registry.assets import prepare_spec
from ..registry.models import get_version, registry_uri
from ..workspace import Workspace

__all__ = ["HoldsSpec", "check_model_location", "checked_spec", "is_registry_ref",
           "tabular_endpoint_spec", "templated", "with_registry"]


class HoldsSpec:
    """What an endpoint and a deployment (frozen dataclasses holding a spec) show alike: the
    spec's kind, and their fields with it as JSON."""

    spec: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "script"))

    def to_dict(self) -> dict[str, Any]:
        names = getattr(self, "__dataclass_fields__", {})
        return {k: getattr(self, k) for k in names} | {"kind": self.kind}


def is_registry_ref(model: str) -> bool:
    return model.startswith("models:/")


def templated(model: str) -> bool:
    return "{" in model


def tabular_endpoint_spec(
    name: str,
    model: str,
    *,
    group_by: Sequence[str] = (),
    keys: Sequence[str] = (),
    features: Sequence[str] | None = None,
    prediction: str | None = None,
    settings: dict[str, Any] | None = None,
) -> JobSpec:
    """The job spec of an endpoint scoring ``model`` (a registry reference or a folder)."""
    if not model or not model.strip():
        raise SpecError("--model is empty; give models:/NAME@ALIAS, models:/NAME/VERSION or a "
                        "model folder")
    if not is_registry_ref(model) and "://" not in model:
        path = Path(model)
        if not templated(model) and not path.exists():
            raise SpecError(f"model folder {model!r} does not exist")
        model = str(path.resolve())
    options: dict[str, Any] = {"model": model, "group_by": list(group_by), "keys": list(keys)}
    if features is not None:
        options["features"] = list(features)
    if prediction:
        options["prediction"] = prediction
    raw: dict[str, Any] = {"name": name, "kind": "tabular", "options": options}
    raw.update({k: v for k, v in (settings or {}).items() if v is not None})
    return spec_from_mapping(raw, source=f"endpoint {name!r}")


def with_registry(ws: Workspace, spec: JobSpec) -> JobSpec:
    """A tabular spec whose registry references can be resolved by the workers."""
    options = dict(spec.options)
    model = str(options.get("model") or "")
    if spec.kind == "tabular" and is_registry_ref(model) and not options.get("registry_uri"):
        options["registry_uri"] = registry_uri(ws)
        return spec.model_copy(update={"options": options})
    return spec


def _check_model(ws: Workspace, spec: JobSpec) -> None:
    """A registry reference that does not resolve is refused (templates: the name part)."""
    model = str(spec.options.get("model") or "")
    if spec.kind != "tabular" or not is_registry_ref(model) or templated(model):
        return
    get_version(ws, model)


def _location(url: str) -> str:
    """A location compared with the stores: a local path resolved (links followed)."""
    from fsspec.core import url_to_fs

    if url.startswith("file://"):
        return "file://" + os.path.realpath(url_to_fs(url)[1])
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def check_model_location(ws: Workspace, spec: JobSpec) -> None:
    """A model is loaded only from where an admin put it: never from (or around) the data
    store, where operators write, nor the system store, where the service writes.

    Checked when an endpoint or a deployment is made and each time it is invoked (the
    stores' settings may have changed); the workers then load each group's model only inside
    the template's folder (:class:`~batchscore.tabular.models.ModelLoader` ``roots``)."""
    model = str(spec.options.get("model") or "") if spec.kind == "tabular" else ""
    if not model or is_registry_ref(model):
        return
    from ..storage import to_url
    from ..tabular.models import template_root

    folder = template_root(model) if templated(model) else model
    where = _location(to_url(folder or model))
    for store, label in ((ws.data, "data store"), (ws.system, "system store")):
        if _overlaps(where, _location(store.url)):
            raise SpecError(
                f"model {model!r} is in (or holds) the {label}; models are loaded only from "
                f"folders an admin keeps outside the stores (operators write in the data "
                "store)")


def checked_spec(ws: Workspace, name: str, spec: JobSpec) -> JobSpec:
    """``spec`` as endpoint ``name`` (or a deployment of it) records it, validated as a job
    would be (the scoring script exists, the model resolves and lies outside the stores).

    Validated as it would run (a registered model resolved, an MLflow model given its
    driver); returned as written, so that ``azureml:NAME@latest`` is resolved per
    invocation."""
    spec = with_registry(ws, spec.model_copy(update={"name": name}))
    check_model_location(ws, spec)
    get_kind(spec.kind).validate(prepare_spec(ws, spec))
    _check_model(ws, spec)
    return spec
