"""Paths inside the workspace's **data** store, as runs and triggers name them.

Every path a run names lies inside the data store: a relative path (``incoming/clip.mp4``) or
a URL below the data store's URL; ``..``, absolute paths and URLs of any other store are
refused before anything is recorded. (The system store's layout is :mod:`batchscore.paths`.)
"""

from __future__ import annotations

from ..errors import InputError
from ..workspace import Workspace

__all__ = ["data_url", "resolve_data_path"]


def data_url(ws: Workspace, rel: str) -> str:
    """The URL of ``rel`` (a path relative to the data store's root)."""
    base = ws.settings.data_store
    if base.endswith("://"):  # the account itself: az:// holds containers at its top
        return base + rel.lstrip("/")
    return f"{base.rstrip('/')}/{rel.lstrip('/')}"


def resolve_data_path(ws: Workspace, value: str, what: str = "path") -> str:
    """``value`` as a path relative to the data store, or :class:`InputError` saying why not.

    Accepts ``incoming/clip.mp4`` or a URL below the data store's URL; refuses ``..``,
    absolute paths, backslashes, control characters and URLs of other stores."""
    text = value.strip()
    if not text:
        raise InputError(f"{what} is empty; give a path inside the data store")
    if any(ord(c) < 32 for c in text) or "\\" in text:
        raise InputError(f"{what} {value!r} holds control characters or backslashes")
    if "://" in text:
        base = ws.settings.data_store
        root = base if base.endswith("://") else base.rstrip("/") + "/"
        if not text.startswith(root):
            raise InputError(
                f"{what} {value!r} is not in the data store ({base}); only paths inside the "
                "data store are accepted")
        text = text[len(root):]
    if text.startswith("/"):
        raise InputError(f"{what} {value!r} is absolute; give a path inside the data store")
    parts = text.split("/")
    if any(part in ("..", ".") for part in parts):
        raise InputError(f"{what} {value!r} leaves the data store ('..' and '.' are not allowed)")
    return text
