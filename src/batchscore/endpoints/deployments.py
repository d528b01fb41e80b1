"""Batch deployments: the named scorers of an endpoint, one of them its default.

As in Azure ML, an endpoint (``batchscore endpoint create -f endpoint.yml``) holds named
deployments (``batchscore deployment create -f deployment.yml --endpoint-name E``); invoking
the endpoint runs its default deployment, or the one named. The endpoint's own ``spec`` is
always its default deployment's spec, so everything that reads endpoints (the REST API, the
dashboard, streams that invoke an endpoint) runs the default deployment unchanged. An
endpoint created with ``--model`` / ``--script`` (or before deployments existed) has no
rows of its own here and reads as one deployment named ``default``.

Each invocation records the deployment that ran in its run's parameters (``deployment``),
so an endpoint's jobs can be listed per deployment.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from ..errors import DeploymentNotFoundError, SpecError
from ..jobs.spec import JobSpec, read_yaml_mapping
from ..state.named import named_write
from ..state.tables import deployments, endpoints
from ..workspace import Workspace
from .endpoints import Endpoint, get_endpoint, point_default
from .specs import HoldsSpec, checked_spec

__all__ = [
    "LEGACY",
    "Deployment",
    "DeploymentNotFoundError",
    "create_deployment",
    "default_deployment",
    "delete_deployment",
    "get_deployment",
    "list_deployments",
    "load_endpoint_yaml",
    "set_default",
]

LEGACY = "default"  # the one deployment of an endpoint made with --model / --script
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_ENDPOINT_KEYS = {"name", "description", "defaults"}
_ENDPOINT_IGNORED = {"$schema", "auth_mode", "tags", "properties", "identity"}


@dataclass(frozen=True)
class Deployment(HoldsSpec):
    endpoint: str
    name: str
    spec: dict[str, Any]
    model: str | None
    description: str | None
    created_by: str | None
    created_at: float
    updated_at: float
    is_default: bool = False


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"deployment name {name!r} must be 1-32 letters, digits, '-' or '_', "
                        "starting with a letter or digit")
    return name


def load_endpoint_yaml(path: Path) -> dict[str, Any]:
    """An ``endpoint.yml`` (Azure's batchEndpoint schema): name, description, defaults."""
    raw = read_yaml_mapping(path, "endpoint")
    for key in raw:
        if key not in _ENDPOINT_KEYS | _ENDPOINT_IGNORED:
            raise SpecError(f"endpoint file {str(path)!r}: unknown key {key!r} (known: "
                            f"{', '.join(sorted(_ENDPOINT_KEYS | _ENDPOINT_IGNORED))})")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - {"deployment_name"}:
        raise SpecError(f"endpoint file {str(path)!r}: defaults takes deployment_name only")
    return {"name": raw.get("name"), "description": raw.get("description"),
            "default": defaults.get("deployment_name")}


def default_deployment(ws: Workspace, endpoint: str) -> str | None:
    with ws.engine.connect() as conn:
        row = conn.execute(select(endpoints.c.default_deployment, endpoints.c.spec)
                           .where(endpoints.c.name == endpoint)).first()
    if row is None:
        get_endpoint(ws, endpoint)  # raises, naming the endpoints
        return None
    if row.default_deployment:
        return str(row.default_deployment)
    return LEGACY if row.spec else None


def _legacy(endpoint: Endpoint) -> Deployment:
    return Deployment(endpoint.name, LEGACY, endpoint.spec, endpoint.model,
                      endpoint.description, endpoint.created_by, endpoint.created_at,
                      endpoint.updated_at, True)


def list_deployments(ws: Workspace, endpoint: str) -> list[Deployment]:
    ep = get_endpoint(ws, endpoint)
    default = default_deployment(ws, endpoint)
    with ws.engine.connect() as conn:
        rows = conn.execute(select(deployments).where(deployments.c.endpoint == endpoint)
                            .order_by(deployments.c.name)).all()
    found = [Deployment(**dict(r._mapping), is_default=r.name == default) for r in rows]
    if not found and ep.spec:
        return [_legacy(ep)]
    return found


def get_deployment(ws: Workspace, endpoint: str, name: str | None = None) -> Deployment:
    """Deployment ``name`` of ``endpoint`` (None: its default)."""
    all_ = list_deployments(ws, endpoint)
    if name is None:
        found = [d for d in all_ if d.is_default]
        if not found:
            raise DeploymentNotFoundError(
                f"endpoint {endpoint!r} has no deployments yet; create one with batchscore "
                f"deployment create -f deployment.yml --endpoint-name {endpoint}")
        return found[0]
    found = [d for d in all_ if d.name == name]
    if not found:
        raise DeploymentNotFoundError(
            f"endpoint {endpoint!r} has no deployment {name!r}; deployments are "
            f"{', '.join(d.name for d in all_) or '(none yet)'}")
    return found[0]


def _materialize_legacy(conn: Any, ep: Endpoint) -> None:
    """Give an endpoint made with --model/--script its ``default`` deployment row."""
    has_rows = conn.execute(select(deployments.c.name)
                            .where(deployments.c.endpoint == ep.name)).first()
    if has_rows is None and ep.spec:
        conn.execute(insert(deployments).values(
            endpoint=ep.name, name=LEGACY, spec=ep.spec, model=ep.model,
            description=ep.description, created_by=ep.created_by,
            created_at=ep.created_at, updated_at=ep.updated_at))
        point_default(conn, ep.name, LEGACY)


def create_deployment(ws: Workspace, endpoint: str, name: str, spec: JobSpec, *,
                      set_default: bool = False, description: str | None = None,
                      created_by: str | None = None) -> Deployment:
    """Add deployment ``name`` to ``endpoint``, validated as the endpoint's would be. The
    first deployment of an endpoint becomes its default; ``set_default`` makes this one."""
    _check_name(name)
    ep = get_endpoint(ws, endpoint)
    spec = checked_spec(ws, endpoint, spec)
    now = time.time()
    dumped = spec.model_dump(mode="json")
    model = spec.options.get("model") or spec.model_dir
    taken = SpecError(f"endpoint {endpoint!r} has a deployment {name!r} already; delete it "
                      f"first (batchscore deployment delete {name} --endpoint-name {endpoint})")
    with named_write(ws.engine, taken) as conn:
        _materialize_legacy(conn, ep)
        conn.execute(insert(deployments).values(
            endpoint=endpoint, name=name, spec=dumped, model=model, description=description,
            created_by=created_by, created_at=now, updated_at=now))
        if set_default or not ep.spec:
            _point_default(conn, endpoint, name, dumped, model)
    return get_deployment(ws, endpoint, name)


def _point_default(conn: Any, endpoint: str, name: str, spec: dict[str, Any],
                   model: str | None) -> None:
    point_default(conn, endpoint, name, spec=spec, model=model, updated_at=time.time())


def set_default(ws: Workspace, endpoint: str, name: str) -> Deployment:
    """Make deployment ``name`` the one invoking ``endpoint`` runs."""
    target = get_deployment(ws, endpoint, name)
    with ws.engine.begin() as conn:
        _materialize_legacy(conn, get_endpoint(ws, endpoint))
        _point_default(conn, endpoint, name, target.spec, target.model)
    return get_deployment(ws, endpoint, name)


def delete_deployment(ws: Workspace, endpoint: str, name: str) -> Deployment:
    """Remove a deployment; the default one only when it is the last (as Azure)."""
    target = get_deployment(ws, endpoint, name)
    others = [d for d in list_deployments(ws, endpoint) if d.name != name]
    if target.is_default and others:
        raise SpecError(f"deployment {name!r} is the default of endpoint {endpoint!r}; make "
                        f"another the default first (batchscore endpoint update {endpoint} "
                        f"--default-deployment {others[0].name})")
    with ws.engine.begin() as conn:
        conn.execute(delete(deployments).where(deployments.c.endpoint == endpoint,
                                               deployments.c.name == name))
        if target.is_default:
            point_default(conn, endpoint, None, spec={}, model=None, updated_at=time.time())
    return target
