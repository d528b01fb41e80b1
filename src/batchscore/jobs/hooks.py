"""What the engine asks of the layers above it, found by name as job kinds are.

``jobs`` imports neither the registry nor any domain. Two steps of a job need the registry,
which sits above the engine (its references and environments are not the engine's):

- ``prepare``: when a job is submitted, a registered model (``azureml:NAME@latest``,
  ``models:/...``) in the spec resolved to its version's files, an MLflow model without a
  scoring script given its driver, the virtualenv built, and data-asset inputs
  (``azureml:NAME@latest``) resolved to their paths
  (:func:`batchscore.registry.assets.prepare_job`);
- ``environment``: in a worker, the entry script started in its virtualenv
  (:func:`batchscore.registry.envs.start_env`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import SpecError

__all__ = ["hook"]

_HOOKS = {
    "prepare": "batchscore.registry.assets:prepare_job",
    "environment": "batchscore.registry.envs:start_env",
}


def hook(name: str) -> Callable[..., Any]:
    """The function registered as hook ``name``."""
    target = _HOOKS.get(name)
    if target is None:
        raise SpecError(f"unknown engine hook {name!r}; known: {', '.join(sorted(_HOOKS))}")
    module, _, attr = target.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return found
