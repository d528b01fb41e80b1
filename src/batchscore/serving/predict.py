"""The ``predict`` a served model is called with: MLflow's pyfunc ``predict``, or straight the
flavour's own when MLflow's input-schema enforcement would change nothing.

The scoring app checks every request against the signature itself
(:func:`~batchscore.serving.inputs.to_frame`) and hands ``predict`` a frame that has exactly
the signature's columns, in its order, each in the signature's type. For a signature whose
columns are all required numbers or booleans (no strings, no optional columns, no params, not
one made from type hints), MLflow's ``_enforce_schema`` then returns an equal frame: pyfunc's
``predict`` rebuilds it column by column for nothing (about 40% of a one-row ``predict`` of a
scikit-learn model). For such a model the flavour's ``predict`` is called directly, once the
enforcement has been seen to change nothing on a probe frame of the signature when the model
is loaded. Any other model (or an MLflow without these internals) keeps pyfunc's ``predict``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from .inputs import Signature, to_frame

__all__ = ["served_predict"]

log = logging.getLogger("batchscore.serving")
_PLAIN = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False}


def served_predict(model: Any, signature: Signature) -> Callable[[pd.DataFrame], Any]:
    """The ``predict`` to call with the frames that ``to_frame(..., signature)`` builds."""
    direct = _direct_predict(model, signature)
    return direct if direct is not None else model.predict


def _direct_predict(model: Any, signature: Signature) -> Callable[[pd.DataFrame], Any] | None:
    try:
        from mlflow.models.utils import _enforce_schema

        meta = model.metadata
        schema = meta.get_input_schema()
        if (schema is None or schema.is_tensor_spec() or meta.get_params_schema() is not None
                or meta._is_signature_from_type_hint() or meta._is_type_hint_from_example()
                or not all(getattr(spec, "required", False) for spec in schema.inputs)
                or not all(kind in _PLAIN for _, kind in signature)):
            return None
        probe = to_frame([[_PLAIN[kind] for _, kind in signature]], signature)
        enforced = _enforce_schema(probe.copy(), schema, model.loader_module)
        if not (isinstance(enforced, pd.DataFrame) and enforced.equals(probe)
                and list(enforced.columns) == list(probe.columns)
                and list(enforced.dtypes) == list(probe.dtypes)):
            return None
        fn = model._predict_fn
        takes_params = "params" in inspect.signature(fn).parameters
    except Exception as exc:  # an MLflow without these internals: pyfunc's own predict
        log.debug("predict goes through pyfunc: %s: %s", type(exc).__name__, exc)
        return None
    if takes_params:
        return lambda frame: fn(frame, params=None)
    return fn  # type: ignore[no-any-return]
