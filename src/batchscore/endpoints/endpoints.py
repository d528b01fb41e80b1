"""Batch endpoints: a name bound to a scorer and default job settings; the one writer of the
``endpoints`` table.

An endpoint is a row holding a job spec (a ``tabular`` job scoring a registered model or a
model folder, or a ``script`` job running an entry script): its default deployment's spec
(:mod:`batchscore.endpoints.deployments` points it with :func:`point_default`). An endpoint
made from ``endpoint.yml`` starts bare (:func:`create_bare_endpoint`) until a deployment is
added.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, update

from ..errors import EndpointExistsError, EndpointNotFoundError, SpecError
from ..jobs.spec import JobSpec
from ..state.named import get_named, list_named, named_write
from ..state.tables import endpoints
from ..workspace import Workspace
from .specs import HoldsSpec, checked_spec

__all__ = [
    "Endpoint",
    "EndpointExistsError",
    "EndpointNotFoundError",
    "create_bare_endpoint",
    "create_endpoint",
    "delete_endpoint",
    "get_endpoint",
    "list_endpoints",
    "point_default",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Endpoint(HoldsSpec):
    name: str
    spec: dict[str, Any]
    model: str | None
    description: str | None
    created_by: str | None
    created_at: float
    updated_at: float


def _check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise SpecError(
            f"endpoint name {name!r} must be 1-63 characters of lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit")
    return name


def _row(row: Any) -> Endpoint:
    return Endpoint(**{k: row._mapping[k] for k in Endpoint.__dataclass_fields__})


def create_endpoint(ws: Workspace, name: str, spec: JobSpec, *, model: str | None = None,
                    description: str | None = None, created_by: str | None = None
                    ) -> Endpoint:
    """Record endpoint ``name`` with ``spec`` as its default job settings.

    The spec is validated as a job would be (the scoring script exists, the model resolves)
    before anything is recorded; a taken name is :class:`EndpointExistsError`."""
    _check_name(name)
    spec = checked_spec(ws, name, spec)
    now = time.time()
    values = dict(name=name, spec=spec.model_dump(mode="json"),
                  model=model or spec.options.get("model") or spec.model_dir,
                  description=description, created_by=created_by, created_at=now,
                  updated_at=now)
    return _insert(ws, values, "delete it first (batchscore endpoint delete {name}) or choose "
                   "another name")


def create_bare_endpoint(ws: Workspace, name: str, *, description: str | None = None,
                         created_by: str | None = None) -> Endpoint:
    """An endpoint without deployments yet (invoking it is refused until one is made)."""
    _check_name(name)
    now = time.time()
    values = dict(name=name, spec={}, model=None, description=description,
                  created_by=created_by, created_at=now, updated_at=now)
    return _insert(ws, values, "add deployments to it (batchscore deployment create -f "
                   "deployment.yml --endpoint-name {name})")


def _insert(ws: Workspace, values: dict[str, Any], advice: str) -> Endpoint:
    """The one insert into ``endpoints``; a taken name is :class:`EndpointExistsError`."""
    name = values["name"]
    taken = EndpointExistsError(f"endpoint {name!r} exists already; {advice.format(name=name)}")
    with named_write(ws.engine, taken) as conn:
        conn.execute(insert(endpoints).values(**values))
    return Endpoint(**values)


def get_endpoint(ws: Workspace, name: str) -> Endpoint:
    return _row(get_named(ws.engine, endpoints, name, what="endpoint",
                          none_yet="(none yet: batchscore endpoint create)",
                          error=EndpointNotFoundError))


def list_endpoints(ws: Workspace) -> list[Endpoint]:
    return [_row(r) for r in list_named(ws.engine, endpoints)]


def delete_endpoint(ws: Workspace, name: str) -> Endpoint:
    """Remove endpoint ``name``; its jobs and their outputs stay."""
    endpoint = get_endpoint(ws, name)
    with ws.engine.begin() as conn:
        conn.execute(delete(endpoints).where(endpoints.c.name == name))
    return endpoint


_DEFAULT_VALUES = {"spec", "model", "updated_at"}


def point_default(conn: Connection, endpoint: str, deployment: str | None,
                  **values: Any) -> None:
    """Make ``deployment`` (None: none) the default of ``endpoint``, in the caller's
    transaction; ``values``: the endpoint's ``spec``, ``model`` and ``updated_at`` with it
    (the endpoint's spec is always its default deployment's)."""
    unknown = set(values) - _DEFAULT_VALUES
    if unknown:
        raise TypeError(f"point_default sets {', '.join(sorted(_DEFAULT_VALUES))}, not "
                        f"{', '.join(sorted(unknown))}")
    conn.execute(update(endpoints).where(endpoints.c.name == endpoint)
                 .values(default_deployment=deployment, **values))
