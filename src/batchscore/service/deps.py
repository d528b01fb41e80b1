"""Who may do what: the one place that decides.

Roles, each including the ones before it (:data:`~batchscore.service.auth.ROLES`): ``viewer``
reads; ``operator`` starts and cancels runs and uploads inputs to the data store; ``admin``
manages triggers, tokens, endpoints, streams and connections and submits code.

Two checks use the rules here:

* **At the door**, before a byte of the body is read, the guard (:mod:`.guard`) asks
  :func:`door_role` for the least role a request needs and :func:`is_public` whether it needs
  a token at all: a viewer's body is never read by a route that writes.
* **In the route**, each handler asks :func:`require` (or depends on :func:`admin`) for the
  exact role of its operation, and gets the caller (:class:`~.auth.Principal`).
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from ..pipelines import PIPELINES
from .auth import Principal

__all__ = ["admin", "door_role", "is_public", "pipeline_role", "principal_of", "require"]

# Served without a token (still behind the Host check when no token comes).
PUBLIC = ("/healthz", "/", "/api/v1/download", "/api/v1/openapi.json", "/api/v1/docs",
          "/api/v1/docs/oauth2-redirect")
PUBLIC_PREFIXES = ("/dashboard/", "/dashboard")
# Admin-only routes that take a body (or change what exists): the role is checked at the door.
ADMIN_EXACT = {("POST", "/api/v1/jobs"), ("POST", "/api/v1/tokens"),
               ("POST", "/api/v1/triggers"), ("POST", "/api/v1/endpoints"),
               ("POST", "/api/v1/streams"), ("POST", "/api/v1/connections")}
ADMIN_DELETE = ("/api/v1/tokens/", "/api/v1/triggers/", "/api/v1/endpoints/",
                "/api/v1/streams/", "/api/v1/connections/")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def is_public(path: str) -> bool:
    """True for the paths served without a token."""
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def door_role(method: str, path: str) -> str:
    """The least role a request needs before its body is read."""
    if method not in WRITES:
        return "viewer"
    if (method, path) in ADMIN_EXACT or (method == "DELETE" and path.startswith(ADMIN_DELETE)):
        return "admin"
    if method == "POST" and path.startswith("/api/v1/pipelines/") and path.endswith("/runs"):
        return pipeline_role(path[len("/api/v1/pipelines/"):-len("/runs")])
    return "operator"


def principal_of(request: Request) -> Principal | None:
    """Who makes ``request``: the principal of its token (checked by the guard before the
    body was read), or None (no valid token). There is no ambient authority: a request from
    the loopback interface needs a token as any other (the local admin's is in
    the workspace's ``service/admin.token``)."""
    state = request.scope.get("state") or {}
    if "principal" in state:
        found: Principal | None = state["principal"]
        return found
    return None


def require(request: Request, role: str) -> Principal:
    """The caller, if its role allows ``role``; else 401 (who are you?) or 403 (not allowed)."""
    who = principal_of(request)
    if who is None:
        raise HTTPException(401, "a valid API token is required (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    if not who.can(role):
        raise HTTPException(403, f"token {who.name!r} has role {who.role}; this needs {role}")
    return who


def admin(request: Request) -> Principal:
    """The caller, if an admin (a dependency: checked before the request body is validated)."""
    return require(request, "admin")


def pipeline_role(name: str) -> str:
    """The role that starting a run of pipeline ``name`` needs (an unknown name: operator,
    and the route answers 404)."""
    known = PIPELINES.get(name)
    return known.role if known is not None else "operator"
