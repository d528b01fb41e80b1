"""MLOps: the model registry (MLflow's), the train-evaluate-register pipeline, data tests
and the project CI check. Importing this package does not import MLflow; its functions do."""

from __future__ import annotations

from ..errors import DataTestError, ModelNotFoundError, ProjectError
from .flow import PIPELINE_NAME, Outcome, train_evaluate_register
from .registry import (
    ModelVersion,
    get_version,
    list_models,
    promote,
    registry_uri,
    rollback,
)

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
