"""MLOps: the train-evaluate-register pipeline, data tests and the project CI check, over the
model registry of :mod:`batchscore.registry.models` (re-exported here). Importing this
package does not import MLflow; its functions do."""

from __future__ import annotations

from ..errors import DataTestError, ModelNotFoundError, ProjectError
from ..registry.models import (
    ModelVersion,
    get_version,
    list_models,
    promote,
    registry_uri,
    rollback,
)
from .flow import PIPELINE_NAME, Outcome, train_evaluate_register

__all__ = [
    "PIPELINE_NAME",
    "DataTestError",
    "ModelNotFoundError",
    "ModelVersion",
    "Outcome",
    "ProjectError",
    "get_version",
    "list_models",
    "promote",
    "registry_uri",
    "rollback",
    "train_evaluate_register",
]
