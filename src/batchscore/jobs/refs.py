"""References in a job spec, as written: registered models and data assets by name.

A deployment or job YAML names a model as ``azureml:NAME@latest``, ``azureml:NAME@LABEL``,
``azureml:NAME:VERSION``, a ``{name, version}`` mapping, ``models:/NAME[/VERSION|@ALIAS]`` or a
path (a mapping with ``path``). The spec keeps such a reference as a string: this module only
checks its syntax when the spec is read (:func:`model_ref`). Resolving it to a version's files
needs the registry, which sits above the engine: :func:`batchscore.jobs.control.submit_job` asks
the ``prepare`` hook (:mod:`batchscore.jobs.hooks`), found by name as job kinds are.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import SpecError

__all__ = ["ASSET_IGNORED", "MODEL_KEYS", "check_name", "check_version", "is_model_ref",
           "model_ref", "parse_azureml"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_KEYS = {"name", "version", "path", "type", "description", "tags"}
ASSET_IGNORED = {"$schema", "properties", "stage", "datastore", "flavors", "job_name"}
_REF_PREFIXES = ("azureml:", "models:/")


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"{what} name {name!r} must be 1-255 letters, digits, '.', '_' or "
                        "'-', starting with a letter or digit")
    return name


def check_version(version: Any, what: str) -> str:
    text = str(version).strip() if version is not None else ""
    if not VERSION.match(text):
        raise SpecError(f"{what} version {version!r} must be 1-64 letters, digits, '.', '_' "
                        "or '-'")
    return text


def is_model_ref(value: str | None) -> bool:
    """``azureml:...`` or ``models:/...``: a reference to the registry, not a path."""
    return bool(value) and str(value).startswith(_REF_PREFIXES)


def model_ref(value: Any, source: str) -> str | None:
    """A YAML ``model:`` value as a reference (``azureml:NAME@latest``, ...) or a path."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("azureml://"):
            raise SpecError(f"{source}: model {value!r} is in an Azure ML registry shared "
                            "between workspaces; register it here (batchscore model create) "
                            "and use azureml:NAME@latest")
        if text.startswith("azureml:"):
            parse_azureml(text, source)
        return text
    if isinstance(value, dict):
        extra = set(value) - MODEL_KEYS - ASSET_IGNORED
        if extra:
            raise SpecError(f"{source}: unknown key model.{sorted(extra)[0]} (known: "
                            f"{', '.join(sorted(MODEL_KEYS))})")
        if value.get("path") is not None:
            return str(value["path"])
        if value.get("name"):
            name = check_name(str(value["name"]), f"{source}: model")
            if value.get("version") is None:
                return f"azureml:{name}@latest"
            return f"azureml:{name}:{check_version(value['version'], f'{source}: model')}"
        raise SpecError(f"{source}: model needs a path, or a name (and version) of a "
                        "registered model")
    raise SpecError(f"{source}: model must be azureml:NAME@latest, azureml:NAME:VERSION, "
                    f"models:/..., or a mapping with name/version or path; got {value!r}")


def parse_azureml(ref: str, source: str = "model") -> tuple[str, str | None, str | None]:
    """``azureml:NAME@LABEL`` / ``azureml:NAME:VERSION`` as (name, label, version)."""
    text = ref.removeprefix("azureml:")
    if "@" in text:
        name, _, label = text.partition("@")
        version = None
    elif ":" in text:
        name, _, version = text.partition(":")
        label = None
    else:
        raise SpecError(f"{source}: {ref!r} names no version: write azureml:NAME@latest or "
                        "azureml:NAME:VERSION")
    check_name(name, f"{source}: {ref!r}:")
    if label is not None and not VERSION.match(label):
        raise SpecError(f"{source}: {ref!r}: label {label!r} is not a plain name")
    if version is not None:
        check_version(version, f"{source}: {ref!r}:")
    return name, label, version
