"""Online scoring: a registered model behind the MLflow scoring protocol and the Open
Inference Protocol v2, with input validation, request logging to the data store and metrics."""

from __future__ import annotations

from .app import ServedModel, create_app, load_served_model
from .datalog import InferenceLogger
from .inputs import InputProblem

__all__ = ["InferenceLogger", "InputProblem", "ServedModel", "create_app", "load_served_model"]
