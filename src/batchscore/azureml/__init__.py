"""Azure ML compatibility: registered model and data assets, references such as
``azureml:NAME@latest``, MLflow deployments without a scoring script, parallel job YAMLs.

The registry behind model assets is the workspace's MLflow registry
(:mod:`batchscore.mlops.registry`); data assets are small JSON records in the system store.
"""

from .assets import (
    DataAsset,
    ResolvedModel,
    get_data,
    is_model_ref,
    list_data,
    model_ref,
    prepare_spec,
    register_data,
    register_model,
    resolve_input,
    resolve_model,
)

__all__ = [
    "DataAsset",
    "ResolvedModel",
    "get_data",
    "is_model_ref",
    "list_data",
    "model_ref",
    "prepare_spec",
    "register_data",
    "register_model",
    "resolve_input",
    "resolve_model",
]
