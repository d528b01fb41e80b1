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

import yaml
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .endpoints import (
    Endpoint,
    Invocation,
    create_bare_endpoint,
    get_endpoint,
    invocations,
    invoke_endpoint,
)
from .errors import DeploymentNotFoundError, SpecError
from .jobs.spec import JobSpec
from .state.tables import deployments, endpoints
from .workspace import Workspace

__all__ = [
    "LEGACY",
    "Deployment",
    "DeploymentNotFoundError",
    "create_bare_endpoint",
    "create_deployment",
    "default_deployment",
    "delete_deployment",
    "deployment_jobs",
    "get_deployment",
    "invoke_deployment",
    "list_deployments",
    "load_endpoint_yaml",
    "set_default",
]

LEGACY = "default"  # the one deployment of an endpoint made with --model / --script
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_ENDPOINT_KEYS = {"name", "description", "defaults"}
_ENDPOINT_IGNORED = {"$schema", "auth_mode", "tags", "properties", "identity"}


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    name: str
    spec: dict[str, Any]
    model: str | None
    description: str | None
    created_by: str | None
    created_at: float
    updated_at: float
    is_default: bool = False

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "script"))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"kind": self.kind}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"deployment name {name!r} must be 1-32 letters, digits, '-' or '_', "
                        "starting with a letter or digit")
    return name


def load_endpoint_yaml(path: Path) -> dict[str, Any]:
    """An ``endpoint.yml`` (Azure's batchEndpoint schema): name, description, defaults."""
    if not path.is_file():
        raise SpecError(f"endpoint file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"endpoint file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"endpoint file {str(path)!r} must be a mapping")
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
        conn.execute(update(endpoints).where(endpoints.c.name == ep.name)
                     .values(default_deployment=LEGACY))


def create_deployment(ws: Workspace, endpoint: str, name: str, spec: JobSpec, *,
                      set_default: bool = False, description: str | None = None,
                      created_by: str | None = None) -> Deployment:
    """Add deployment ``name`` to ``endpoint``, validated as the endpoint's would be. The
    first deployment of an endpoint becomes its default; ``set_default`` makes this one."""
    from .azureml.assets import prepare_spec
    from .endpoints import _check_model, _with_registry
    from .jobs.kinds import get_kind

    _check_name(name)
    ep = get_endpoint(ws, endpoint)
    spec = _with_registry(ws, spec.model_copy(update={"name": endpoint}))
    get_kind(spec.kind).validate(prepare_spec(ws, spec))
    _check_model(ws, spec)
    now = time.time()
    dumped = spec.model_dump(mode="json")
    model = spec.options.get("model") or spec.model_dir
    try:
        with ws.engine.begin() as conn:
            _materialize_legacy(conn, ep)
            conn.execute(insert(deployments).values(
                endpoint=endpoint, name=name, spec=dumped, model=model,
                description=description, created_by=created_by, created_at=now,
                updated_at=now))
            if set_default or not ep.spec:
                _point_default(conn, endpoint, name, dumped, model)
    except IntegrityError:
        raise SpecError(f"endpoint {endpoint!r} has a deployment {name!r} already; delete "
                        f"it first (batchscore deployment delete {name} --endpoint-name "
                        f"{endpoint})") from None
    return get_deployment(ws, endpoint, name)


def _point_default(conn: Any, endpoint: str, name: str, spec: dict[str, Any],
                   model: str | None) -> None:
    conn.execute(update(endpoints).where(endpoints.c.name == endpoint).values(
        default_deployment=name, spec=spec, model=model, updated_at=time.time()))


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
            conn.execute(update(endpoints).where(endpoints.c.name == endpoint).values(
                default_deployment=None, spec={}, model=None, updated_at=time.time()))
    return target


def invoke_deployment(ws: Workspace, endpoint: str, inputs: list[str], output: str, *,
                      deployment: str | None = None, **kwargs: Any) -> Invocation:
    """Invoke ``endpoint``'s default deployment, or ``deployment``; the run's parameters
    record which one ran."""
    target = get_deployment(ws, endpoint, deployment)
    return invoke_endpoint(ws, endpoint, inputs, output, deployment=target.name,
                           deployment_spec=None if target.is_default else target.spec,
                           **kwargs)


def deployment_jobs(ws: Workspace, endpoint: str, name: str, limit: int = 20
                    ) -> list[dict[str, Any]]:
    """The latest invocations of ``endpoint`` that ran deployment ``name``, newest first
    (invocations recorded before deployments existed count as the default's)."""
    target = get_deployment(ws, endpoint, name)
    out = []
    for inv in invocations(ws, endpoint, limit=500):
        ran = inv.get("params", {}).get("deployment")
        if ran == name or (ran is None and target.is_default):
            out.append(inv)
        if len(out) >= limit:
            break
    return out
