"""Signed, expiring download links for outputs in the data store (HMAC-SHA256).

The key is made once and kept in the system store (``service/signing.key``), which no API
request can write; a link names a data store path and its expiry, and any change to either
breaks the signature."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

from ..errors import UsageError
from ..workspace import Workspace

__all__ = ["LinkError", "check_link", "sign_link"]

_KEY = "service/signing.key"


class LinkError(UsageError):
    """A download link that is expired, tampered with or malformed."""


def _key(ws: Workspace) -> bytes:
    store = ws.system
    if not store.exists(_KEY):
        store.write_text(_KEY, secrets.token_hex(32))
    return bytes.fromhex(store.read_text(_KEY).strip())


def _sign(ws: Workspace, path: str, expires: int) -> str:
    return hmac.new(_key(ws), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign_link(ws: Workspace, path: str, ttl: float = 3600.0, base: str = "/api/v1/download"
              ) -> tuple[str, int]:
    """A link to download ``path`` (in the data store) until ``ttl`` seconds from now."""
    expires = int(time.time() + ttl)
    query = urlencode({"path": path, "expires": expires, "sig": _sign(ws, path, expires)})
    return f"{base}?{query}", expires


def check_link(ws: Workspace, path: str, expires: int, sig: str) -> None:
    if expires < time.time():
        raise LinkError("this download link has expired; ask for a new one")
    if not hmac.compare_digest(_sign(ws, path, expires), sig):
        raise LinkError("this download link's signature does not match")
