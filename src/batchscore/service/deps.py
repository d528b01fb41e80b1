"""Who may do what: the one place that decides.

Roles, each including the ones before it (:data:`~batchscore.service.auth.ROLES`): ``viewer``
reads; ``operator`` starts and cancels runs and uploads inputs to the data store; ``admin``
manages triggers, tokens, endpoints, streams and connections and submits code.

Each route declares its role once, as a parameter (``who: Admin``): the dependency checks it
(before the request body is validated) and gives the handler its caller. The guard
(:mod:`.guard`) reads the same declaration at the door, before a byte of the body is read
(:class:`DoorRules`): a caller whose role is too low for a route that writes never has its
body read. Public paths (:func:`is_public`) need no token at all.
"""


# No ``from __future__ import annotations`` here: FastAPI 0.110 (our lower bound) reads a callable
# dependency's ``__call__`` annotations without this module's globals, so they must be objects
# (as strings, ``Request`` was taken for a query parameter; the lowest-versions lane found it).
import re
from collections.abc import MutableMapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from .auth import ROLES, Principal

__all__ = ["PUBLIC", "WRITES", "Admin", "DoorRules", "Operator", "Role", "Viewer",
           "is_public", "principal_of", "require"]

# Served without a token (still behind the Host check when no token comes).
PUBLIC = ("/healthz", "/", "/api/v1/download", "/api/v1/openapi.json", "/api/v1/docs",
          "/api/v1/docs/oauth2-redirect")
_PUBLIC_PREFIXES = ("/dashboard/", "/dashboard")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_public(path: str) -> bool:
    """True for the paths served without a token."""
    return path in PUBLIC or path.startswith(_PUBLIC_PREFIXES)


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


class Role:
    """A route's role, as a dependency: it answers the caller, or 401/403."""

    def __init__(self, name: str) -> None:
        if name not in ROLES:
            raise ValueError(f"unknown role {name!r}")
        self.name = name

    def __call__(self, request: Request) -> Principal:
        return require(request, self.name)

    def __repr__(self) -> str:
        return f"Role({self.name!r})"


def caller(role: str) -> Any:
    """The type of a handler's parameter that declares ``role`` and receives the caller."""
    return Annotated[Principal, Depends(Role(role))]


Viewer = Annotated[Principal, Depends(Role("viewer"))]
Operator = Annotated[Principal, Depends(Role("operator"))]
Admin = Annotated[Principal, Depends(Role("admin"))]


def route_role(route: APIRoute) -> str | None:
    """The role ``route`` declares (its :class:`Role` dependency), or None."""
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Role):
            return dependency.call.name
    return None


class DoorRules:
    """The least role a request needs before its body is read: the role of the route it will
    reach, for a request that writes (operator when no route declares one); viewer for one
    that reads. Read from ``routers`` (mounted under ``prefix``), in the order they match."""

    def __init__(self, routers: Sequence[APIRouter], prefix: str = "") -> None:
        self.routes: list[tuple[re.Pattern[str], set[str], str]] = []
        for router in routers:
            for route in router.routes:
                if isinstance(route, APIRoute) and WRITES & set(route.methods):
                    pattern = compile_path(prefix + route.path)[0]
                    self.routes.append((pattern, set(route.methods),
                                        route_role(route) or "operator"))

    def role(self, scope: MutableMapping[str, Any]) -> str:
        method = scope.get("method", "GET")
        if method not in WRITES:
            return "viewer"
        for pattern, methods, role in self.routes:
            if method in methods and pattern.match(scope["path"]):
                return role
        return "operator"
