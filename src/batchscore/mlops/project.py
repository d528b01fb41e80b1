"""A user project folder: ``params.yaml`` and the modules the pipeline calls.

The contract (see ``examples/diabetes``)::

    params.yaml     model_name, data.test_size, data.seed, promotion.margin (+ your own)
    data.py         load() -> DataFrame, reference() -> DataFrame; FEATURES, TARGET
    data_tests.py   check(data, reference) -> list[str]   (one problem per line, empty: passed)
    train.py        train(features, target, params) -> a scikit-learn style model
    evaluate.py     evaluate(model, features, target) -> {metric: value}
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ..errors import ProjectError

__all__ = ["MODULES", "Project", "load_project"]

MODULES = ("data", "data_tests", "train", "evaluate")


@dataclass(frozen=True)
class Project:
    path: Path
    params: dict[str, Any]

    @property
    def model_name(self) -> str:
        return str(self.params["model_name"])

    def module(self, name: str) -> ModuleType:
        """The project's ``name.py``, imported from its file (under a name of its own)."""
        file = self.path / f"{name}.py"
        if not file.is_file():
            raise ProjectError(f"project {self.path} has no {name}.py")
        tag = hashlib.sha1(str(self.path).encode(), usedforsecurity=False).hexdigest()[:8]
        spec = importlib.util.spec_from_file_location(f"_bs_project_{tag}_{name}", file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ProjectError(f"{file} cannot be imported: {type(exc).__name__}: {exc}") from None
        return module

    def code_version(self) -> str:
        """The git commit holding the project, or ``unknown`` outside git."""
        try:
            done = subprocess.run(["git", "-C", str(self.path), "rev-parse", "HEAD"],  # nosec B603 B607  # git on PATH, argv
                                  capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    def content_hash(self) -> str:
        """A hash of what a training run executes and with which settings: the effective
        params (params.yaml with the overrides applied) and every ``*.py`` file under the
        project folder (hidden folders and ``__pycache__`` left out), by path and content.

        The git sha (:meth:`code_version`) does not see uncommitted edits, and is
        ``unknown`` outside git; this does."""
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True, default=str).encode())
        for file in sorted(self.path.rglob("*.py")):
            rel = file.relative_to(self.path)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            digest.update(b"\0" + rel.as_posix().encode() + b"\0")
            try:
                digest.update(hashlib.sha256(file.read_bytes()).digest())
            except OSError as exc:
                raise ProjectError(f"{file} cannot be read: {exc}") from None
        return digest.hexdigest()[:16]


def _number(params: dict[str, Any], section: str, key: str, lo: float, hi: float) -> None:
    value = params.get(section, {}).get(key) if isinstance(params.get(section), dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
        raise ProjectError(f"params.yaml: {section}.{key} must be a number in [{lo}, {hi}], "
                           f"got {value!r}")


def load_project(path: str | Path, overrides: dict[str, str] | None = None) -> Project:
    """Read and check ``path/params.yaml``; ``overrides`` maps ``section.key`` to a YAML value."""
    if any(ord(c) < 32 for c in str(path)):
        raise ProjectError(f"project path {str(path)!r} holds control characters")
    root = Path(path).resolve()
    file = root / "params.yaml"
    if not file.is_file():
        raise ProjectError(f"{root} is not a project folder: it has no params.yaml")
    try:
        params = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProjectError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ProjectError(f"{file} must hold a mapping, got {type(params).__name__}")
    for key, raw in (overrides or {}).items():
        section, dot, name = key.partition(".")
        if not dot or not isinstance(params.get(section, {}), dict):
            raise ProjectError(f"parameter {key!r} must be SECTION.KEY (such as train.alpha)")
        params.setdefault(section, {})[name] = yaml.safe_load(raw)
    if not isinstance(params.get("model_name"), str) or not params["model_name"].strip():
        raise ProjectError(f"params.yaml: model_name must be a non-empty string, got "
                           f"{params.get('model_name')!r}")
    _number(params, "data", "test_size", 0.05, 0.9)
    _number(params, "data", "seed", 0, 2**31)
    _number(params, "promotion", "margin", 0.0, 1.0)
    return Project(root, params)
