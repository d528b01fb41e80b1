"""Bounds on the shape of a JSON text, checked before it is parsed: a body nested thousands
deep makes the parser recurse until it fails, and millions of tiny elements cost far more
memory as Python objects than as bytes. Used by the control plane and the scoring server."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["JsonShapeError", "check_json_shape"]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


class JsonShapeError(ValueError):
    """A JSON body nested deeper, or holding more elements, than the service accepts."""


def check_json_shape(body: bytes, max_depth: int, max_elements: int) -> None:
    """Raise :class:`JsonShapeError` when ``body`` (JSON text) nests deeper than ``max_depth``
    or holds more than ``max_elements`` values in its arrays and objects; malformed JSON is
    left for the parser to refuse. Strings are skipped first (C speed), so only the brackets
    and commas of the structure are counted."""
    bare = _STRING.sub(b'""', body)
    elements = bare.count(b",") + bare.count(b"[") + bare.count(b"{")
    if elements > max_elements:
        raise JsonShapeError(f"the JSON body holds more than {max_elements} elements")
    if bare.count(b"[") + bare.count(b"{") <= max_depth:
        return
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int32)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    if int(np.cumsum(steps).max()) > max_depth:  # the deepest point, computed in C
        raise JsonShapeError(f"the JSON body nests deeper than {max_depth} levels")
