"""Bounds on the shape of a JSON text, checked before it is parsed: a body nested thousands
deep makes the parser recurse until it fails, and millions of tiny elements cost far more
memory as Python objects than as bytes. Used by the control plane and the scoring server."""

from __future__ import annotations

import re

__all__ = ["JsonShapeError", "check_json_shape"]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


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
    depth = 0
    for token in _BRACKET.finditer(bare):
        if token.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise JsonShapeError(f"the JSON body nests deeper than {max_depth} levels")
        else:
            depth -= 1
