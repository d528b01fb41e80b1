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

from ..errors import LinkError
from ..workspace import Workspace, private_dir, write_private

__all__ = ["LinkError", "check_link", "sign_link"]

_KEY = "service/signing.key"


def _key(ws: Workspace) -> bytes:
    store = ws.system
    if not store.exists(_KEY):
        if store.is_local:  # readable by the service's user only (0600 in a 0700 folder)
            path = store.local_path(_KEY)
            private_dir(path.parent)
            write_private(path, secrets.token_hex(32))
        else:  # a remote system store: its own access control applies
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


def check_link(ws: Workspace, path: str, expires: int, sig: str,
               max_ttl: float | None = None) -> None:
    """Refuse a link that expired, that lives longer than ``max_ttl`` seconds from now (the
    admin's limit: a link made for years is not honoured), or whose signature is wrong."""
    now = time.time()
    if expires < now:
        raise LinkError("this download link has expired; ask for a new one")
    if max_ttl is not None and expires > now + max_ttl:
        raise LinkError(f"this download link lives longer than the service allows "
                        f"({max_ttl:g} s); ask for a new one")
    if not hmac.compare_digest(_sign(ws, path, expires), sig):
        raise LinkError("this download link's signature does not match")
