"""What the scoring app serves: a model's name, version, input signature and ``predict``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .inputs import Signature

__all__ = ["ServedModel"]


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    signature: Signature
    predict: Callable[[pd.DataFrame], Any]
    output_type: str = "double"  # the signature's output type (an MLflow type name)
