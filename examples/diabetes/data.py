"""The project's data: scikit-learn's diabetes set (442 patients, 10 features, a target)."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_diabetes

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
TARGET = "target"


def load() -> pd.DataFrame:
    """The training data: the 10 features in their original units, and the target."""
    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame[[*FEATURES, TARGET]].astype("float64")


def reference() -> pd.DataFrame:
    """The data the model was designed on: new data is compared with it for shift."""
    return load()
