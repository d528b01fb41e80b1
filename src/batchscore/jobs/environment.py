"""A deployment's environment, as written: the pip requirements of its conda file.

An Azure ML deployment names an ``environment`` (an ``image`` and a ``conda_file``). With
``env_manager: virtualenv`` its requirements (the pip section and the pip-installable packages
of the conda file) are what the job's virtualenv holds. They are read here, with the spec,
since the conda file's path is relative to the YAML; the virtualenv is built and run by
:mod:`batchscore.registry.envs`, above the engine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import MissingCondaFile, SpecError

__all__ = ["MissingCondaFile", "environment_requirements", "python_note"]

_CONDA_ONLY = {"python", "pip", "setuptools", "wheel"}
_PYTHON_PIN = re.compile(r"^python\s*([=<>!~]=?)?\s*([\d.]+)?")


def _conda_requirements(conda: dict[str, Any], source: str) -> list[str]:
    out: list[str] = []
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            out.extend(str(p) for p in dep.get("pip") or [])
            continue
        name = str(dep).split("::")[-1].strip()
        if _PYTHON_PIN.match(name) and name.startswith("python"):
            continue  # the Python is this machine's (said in the job's log)
        base = re.split(r"[=<>!~ ]", name, maxsplit=1)[0]
        if base in _CONDA_ONLY:
            continue
        # conda's NAME=1.2 is pip's NAME==1.2
        out.append(re.sub(r"(?<![=<>!~])=(?!=)", "==", name))
    return out


def python_note(value: Any, base_dir: Path) -> str | None:
    """What to say when the environment's conda file pins another Python than this one."""
    if not isinstance(value, dict) or not isinstance(value.get("conda_file"), str | dict):
        return None
    conda = value["conda_file"]
    if isinstance(conda, str):
        try:
            conda = yaml.safe_load((base_dir / conda).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return None
    for dep in (conda.get("dependencies") or []) if isinstance(conda, dict) else []:
        match = re.match(r"^python\s*[=<>!~]*=?\s*(\d+\.\d+)", str(dep).split("::")[-1])
        if match:
            here = f"{sys.version_info.major}.{sys.version_info.minor}"
            if match.group(1) != here:
                return (f"the environment asks for Python {match.group(1)}; its virtualenv "
                        f"uses this machine's Python {here}")
    return None


def environment_requirements(value: Any, base_dir: Path, source: str) -> list[str]:
    """The pip requirements of a deployment's ``environment`` (a mapping with a
    ``conda_file`` path or inline conda mapping); an ``azureml:`` reference names none."""
    if not isinstance(value, dict):
        return []
    conda = value.get("conda_file")
    if conda is None:
        return []
    if isinstance(conda, str):
        path = (base_dir / conda).resolve()
        if not path.is_file():
            raise MissingCondaFile(f"{source}: environment.conda_file {conda!r} does not "
                                   "exist")
        try:
            conda = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpecError(f"{source}: environment.conda_file {conda!r} is not valid YAML: "
                            f"{exc}") from None
    if not isinstance(conda, dict):
        raise SpecError(f"{source}: environment.conda_file must be a conda environment "
                        "(a mapping with dependencies)")
    return _conda_requirements(conda, source)
