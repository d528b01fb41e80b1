"""API tokens with roles, hashed at rest (SHA-256; the token itself is shown once).

Roles, each including the ones before it: ``viewer`` reads; ``operator`` starts and cancels
runs and uploads inputs to the data store; ``admin`` manages triggers and tokens. Every
caller needs a token, on the loopback interface too (there is no ambient authority a browser
page could borrow). With ``auth="auto"`` (the default) the service makes a fresh admin
token named ``local-admin`` each time it starts and writes it to the workspace's
``service/admin.token`` (mode 0600, in a 0700 folder), where the CLI on the same machine,
run by the same user, finds it (as Jupyter does): see :func:`write_admin_token`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from ..errors import SpecError, UsageError
from ..state.tables import api_tokens

__all__ = [
    "ADMIN_TOKEN_FILE",
    "LOCAL_ADMIN",
    "ROLES",
    "Principal",
    "create_token",
    "list_tokens",
    "read_admin_token",
    "revoke_token",
    "verify_token",
    "write_admin_token",
]

ROLES = ("viewer", "operator", "admin")
_PREFIX = "bs_"
ADMIN_TOKEN_FILE = "service/admin.token"  # nosec B105  # a file name
LOCAL_ADMIN = "local-admin"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, name: str, role: str) -> tuple[dict[str, Any], str]:
    """A new token for ``name`` with ``role``; returns its record and the token (shown once)."""
    if role not in ROLES:
        raise SpecError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if not name or len(name) > 100:
        raise SpecError(f"token name must be 1-100 characters, got {name!r}")
    token = _PREFIX + secrets.token_urlsafe(32)
    record = {"id": uuid.uuid4().hex[:12], "name": name, "role": role,
              "token_hash": _hash(token), "created_at": time.time(), "last_used_at": None,
              "revoked": False}
    with engine.begin() as conn:
        if conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first():
            raise SpecError(f"a token named {name!r} exists already; revoke it first")
        conn.execute(insert(api_tokens).values(**record))
    return _public(record), token


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "token_hash"}


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_tokens).order_by(api_tokens.c.created_at))
        return [_public(dict(r._mapping)) for r in rows]


def revoke_token(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        result = conn.execute(delete(api_tokens).where(api_tokens.c.name == name))
    if result.rowcount == 0:
        raise UsageError(f"no token named {name!r}")


def verify_token(engine: Engine, token: str) -> Principal | None:
    """The token's principal, or None for an unknown or revoked token."""
    if not token.startswith(_PREFIX) or len(token) > 200:
        return None
    digest = _hash(token)
    with engine.begin() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == digest)).first()
        if row is None or row.revoked or not secrets.compare_digest(row.token_hash, digest):
            return None
        conn.execute(update(api_tokens).where(api_tokens.c.id == row.id)
                     .values(last_used_at=time.time()))
        return Principal(row.name, row.role)


def write_admin_token(ws: Any) -> Path:
    """Make a fresh admin token (``local-admin``, replacing the one of an earlier start) and
    write it to ``<workspace>/service/admin.token``, readable by its owner only; returns
    the file's path."""
    from ..workspace import private_dir, write_private

    folder = private_dir(Path(ws.settings.root) / "service")
    with ws.engine.begin() as conn:
        conn.execute(delete(api_tokens).where(api_tokens.c.name == LOCAL_ADMIN))
    _, token = create_token(ws.engine, LOCAL_ADMIN, "admin")
    path = folder / Path(ADMIN_TOKEN_FILE).name
    write_private(path, token + "\n")
    return path


def read_admin_token(root: str | os.PathLike[str]) -> str | None:
    """The local admin token of the workspace at ``root``, or None when there is none (no
    service started there, or the file is not readable by this user)."""
    try:
        return (Path(root) / ADMIN_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None
