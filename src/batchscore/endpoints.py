"""Batch endpoints: a name bound to a scorer and default job settings.

An endpoint is a row of the state database holding a job spec (a ``tabular`` job scoring a
registered model or a model folder, or a ``script`` job running an entry script). Invoking it
with pointers to data (files, globs, a SQL query through a registered connection
``connection:NAME``, see :mod:`batchscore.connections`, or from the local command line a
database URL) and an output (a folder, a file, a SQL table) starts a job **asynchronously**,
like a managed batch endpoint: :func:`invoke_endpoint` validates and plans the job (so bad
input is refused at once), records it with a pipeline run of ``batch-endpoint`` that points at
it, and returns their ids. The run is then executed by the service's run slots, or, outside a
service, by a detached runner process that :func:`invoke_endpoint` starts (``start=True``).

A model reference with an alias (``models:/NAME@production``) is resolved to its version
when the endpoint is invoked, so the job records exactly which version scored the data.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import (
    EndpointExistsError,
    EndpointNotFoundError,
    InputError,
    SpecError,
)
from .io.sql import is_database_url
from .jobs.api import get_job, submit_job
from .jobs.kinds import get_kind
from .jobs.spec import JobSpec
from .state.tables import endpoints, pipeline_runs
from .workspace import Workspace

__all__ = [
    "PIPELINE",
    "Endpoint",
    "EndpointExistsError",
    "EndpointNotFoundError",
    "Invocation",
    "check_model_location",
    "create_bare_endpoint",
    "create_endpoint",
    "delete_endpoint",
    "endpoint_job_spec",
    "get_endpoint",
    "invocations",
    "invoke_endpoint",
    "is_database_url",
    "list_endpoints",
    "resolve_connections",
    "tabular_endpoint_spec",
]

PIPELINE = "batch-endpoint"  # the pipeline whose runs are an endpoint's invocations
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Endpoint:
    name: str
    spec: dict[str, Any]
    model: str | None
    description: str | None
    created_by: str | None
    created_at: float
    updated_at: float

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "script"))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"kind": self.kind}


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    job_id: str
    run_id: str
    created: bool  # False: the same invocation was running already, its ids are returned

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise SpecError(
            f"endpoint name {name!r} must be 1-63 characters of lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit")
    return name


def _is_registry_ref(model: str) -> bool:
    return model.startswith("models:/")


def _templated(model: str) -> bool:
    return "{" in model


def tabular_endpoint_spec(
    name: str,
    model: str,
    *,
    group_by: Sequence[str] = (),
    keys: Sequence[str] = (),
    features: Sequence[str] | None = None,
    prediction: str | None = None,
    settings: dict[str, Any] | None = None,
) -> JobSpec:
    """The job spec of an endpoint scoring ``model`` (a registry reference or a folder)."""
    if not model or not model.strip():
        raise SpecError("--model is empty; give models:/NAME@ALIAS, models:/NAME/VERSION or a "
                        "model folder")
    if not _is_registry_ref(model) and "://" not in model:
        path = Path(model)
        if not _templated(model) and not path.exists():
            raise SpecError(f"model folder {model!r} does not exist")
        model = str(path.resolve())
    options: dict[str, Any] = {"model": model, "group_by": list(group_by), "keys": list(keys)}
    if features is not None:
        options["features"] = list(features)
    if prediction:
        options["prediction"] = prediction
    raw: dict[str, Any] = {"name": name, "kind": "tabular", "options": options}
    raw.update({k: v for k, v in (settings or {}).items() if v is not None})
    from .jobs.spec import spec_from_mapping

    return spec_from_mapping(raw, source=f"endpoint {name!r}")


def _with_registry(ws: Workspace, spec: JobSpec) -> JobSpec:
    """A tabular spec whose registry references can be resolved by the workers."""
    options = dict(spec.options)
    model = str(options.get("model") or "")
    if spec.kind == "tabular" and _is_registry_ref(model) and not options.get("registry_uri"):
        from .mlops.registry import registry_uri

        options["registry_uri"] = registry_uri(ws)
        return spec.model_copy(update={"options": options})
    return spec


def _check_model(ws: Workspace, spec: JobSpec) -> None:
    """A registry reference that does not resolve is refused (templates: the name part)."""
    model = str(spec.options.get("model") or "")
    if spec.kind != "tabular" or not _is_registry_ref(model) or _templated(model):
        return
    from .mlops.registry import get_version

    get_version(ws, model)


def _location(url: str) -> str:
    """A location compared with the stores: a local path resolved (links followed)."""
    from fsspec.core import url_to_fs

    if url.startswith("file://"):
        return "file://" + os.path.realpath(url_to_fs(url)[1])
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def check_model_location(ws: Workspace, spec: JobSpec) -> None:
    """A model is loaded only from where an admin put it: never from (or around) the data
    store, where operators write, nor the system store, where the service writes.

    Checked when an endpoint is made and each time it is invoked (the stores' settings may
    have changed); the workers then load each group's model only inside the template's
    folder (:class:`~batchscore.tabular.models.ModelLoader` ``roots``)."""
    model = str(spec.options.get("model") or "") if spec.kind == "tabular" else ""
    if not model or _is_registry_ref(model):
        return
    from .storage import to_url
    from .tabular.models import template_root

    folder = template_root(model) if _templated(model) else model
    where = _location(to_url(folder or model))
    for store, label in ((ws.data, "data store"), (ws.system, "system store")):
        if _overlaps(where, _location(store.url)):
            raise SpecError(
                f"model {model!r} is in (or holds) the {label}; models are loaded only from "
                f"folders an admin keeps outside the stores (operators write in the data "
                "store)")


def _row(row: Any) -> Endpoint:
    return Endpoint(**{k: row._mapping[k] for k in Endpoint.__dataclass_fields__})


def create_endpoint(ws: Workspace, name: str, spec: JobSpec, *, model: str | None = None,
                    description: str | None = None, created_by: str | None = None
                    ) -> Endpoint:
    """Record endpoint ``name`` with ``spec`` as its default job settings.

    The spec is validated as a job would be (the scoring script exists, the model resolves)
    before anything is recorded; a taken name is :class:`EndpointExistsError`."""
    _check_name(name)
    spec = _with_registry(ws, spec.model_copy(update={"name": name}))
    check_model_location(ws, spec)
    from .azureml.assets import prepare_spec

    # validated as it would run (a registered model resolved, an MLflow model given its
    # driver); recorded as written, so that azureml:NAME@latest is resolved per invocation
    get_kind(spec.kind).validate(prepare_spec(ws, spec))
    _check_model(ws, spec)
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
    try:
        with ws.engine.begin() as conn:
            conn.execute(insert(endpoints).values(**values))
    except IntegrityError:
        raise EndpointExistsError(
            f"endpoint {name!r} exists already; {advice.format(name=name)}") from None
    return Endpoint(**values)


def get_endpoint(ws: Workspace, name: str) -> Endpoint:
    with ws.engine.connect() as conn:
        row = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
    if row is None:
        known = [e.name for e in list_endpoints(ws)]
        raise EndpointNotFoundError(
            f"no endpoint named {name!r}; endpoints are "
            f"{', '.join(known) if known else '(none yet: batchscore endpoint create)'}")
    return _row(row)


def list_endpoints(ws: Workspace) -> list[Endpoint]:
    with ws.engine.connect() as conn:
        return [_row(r) for r in conn.execute(select(endpoints).order_by(endpoints.c.name))]


def delete_endpoint(ws: Workspace, name: str) -> Endpoint:
    """Remove endpoint ``name``; its jobs and their outputs stay."""
    endpoint = get_endpoint(ws, name)
    with ws.engine.begin() as conn:
        conn.execute(delete(endpoints).where(endpoints.c.name == name))
    return endpoint


def endpoint_job_spec(ws: Workspace, endpoint: Endpoint, *, query: str | None = None,
                      table: str | None = None) -> JobSpec:
    """The spec of one invocation: the endpoint's, plus the data pointers' settings, with an
    aliased registry reference resolved to its version (so the job says what scored it)."""
    spec = _with_registry(ws, JobSpec(**endpoint.spec))
    check_model_location(ws, spec)
    options = dict(spec.options)
    if query is not None:
        if spec.kind != "tabular":
            raise SpecError(f"endpoint {endpoint.name!r} runs a scoring script; --query needs "
                            "an endpoint that scores a model (--model)")
        options["query"] = query
    if table is not None:
        if spec.kind != "tabular":
            raise SpecError(f"endpoint {endpoint.name!r} runs a scoring script; --table needs "
                            "an endpoint that scores a model (--model)")
        options["table"] = table
    model = str(options.get("model") or "")
    if spec.kind == "tabular" and _is_registry_ref(model) and not _templated(model):
        from .mlops.registry import get_version

        version = get_version(ws, model)
        options["model"] = version.uri
        options["model_ref"] = model
    return spec.model_copy(update={"options": options})


def resolve_connections(ws: Workspace, spec: JobSpec, inputs: Sequence[str], output: str
                        ) -> tuple[JobSpec, list[str], str]:
    """Inputs and output naming registered connections (``connection:NAME``) as their URLs,
    and the spec with the input connection's query limits (``options.sql_limits``)."""
    from .connections import input_url, is_connection_ref, output_url

    resolved: list[str] = []
    limits = None
    for value in inputs:
        if is_connection_ref(value):
            url, limits = input_url(ws, value)
            resolved.append(url)
        else:
            resolved.append(value)
    if is_connection_ref(output):
        output = output_url(ws, output)
    if limits is not None:
        spec = spec.model_copy(update={"options": {**spec.options, "sql_limits": limits}})
    return spec, resolved, output


def invoke_endpoint(
    ws: Workspace,
    name: str,
    inputs: Sequence[str],
    output: str,
    *,
    query: str | None = None,
    table: str | None = None,
    overwrite: bool = False,
    created_by: str | None = None,
    run_key: str | None = None,
    start: bool = True,
    deployment: str | None = None,
    deployment_spec: dict[str, Any] | None = None,
) -> Invocation:
    """Start a job of endpoint ``name`` over ``inputs`` into ``output``; returns at once.

    The job is validated and planned here (bad pointers, a failing query, a model that does
    not resolve are errors now), then recorded as queued with a ``batch-endpoint`` run. With
    ``start`` a detached process runs it; a service's run slots take it otherwise. ``run_key``
    makes the call idempotent (a stream's closed partition invokes its endpoint once).
    ``deployment`` / ``deployment_spec``: the deployment that runs (recorded in the run's
    parameters) and its spec, when it is not the endpoint's default
    (:mod:`batchscore.deployments`)."""
    if run_key is not None:
        existing = _run_by_key(ws, run_key)
        if existing is not None:
            return Invocation(name, existing["job_id"], existing["id"], False)
    endpoint = get_endpoint(ws, name)
    if deployment_spec is not None:
        endpoint = replace(endpoint, spec=deployment_spec)
    if not endpoint.spec:
        raise SpecError(f"endpoint {name!r} has no deployments yet; create one with "
                        f"batchscore deployment create -f deployment.yml --endpoint-name {name}")
    if not inputs:
        raise InputError(f"endpoint {name!r}: no input given (--input)")
    if not output:
        raise InputError(f"endpoint {name!r}: no output given (--output)")
    spec = endpoint_job_spec(ws, endpoint, query=query, table=table)
    spec, urls, target = resolve_connections(ws, spec, inputs, output)
    job, created = submit_job(ws, spec, urls, target, overwrite=overwrite)
    if not created:
        run = _run_by_job(ws, job.id)
        if run is not None:
            return Invocation(name, job.id, run["id"], False)
    from .connections import is_connection_ref
    from .pipelines import create_run

    named = any(is_connection_ref(v) for v in [*inputs, output])  # never show their URLs
    params = {"endpoint": name,
              "inputs": list(inputs) if named else list(job.inputs),
              "output": output if named else job.output_url,
              "query": query, "table": table, "overwrite": overwrite,
              **({"deployment": deployment} if deployment else {})}
    try:
        with ws.engine.begin() as conn:
            run = create_run(conn, PIPELINE, params, run_key=run_key, created_by=created_by)
            conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run.id)
                         .values(job_id=job.id,
                                 output_url=output if named else job.output_url))
    except IntegrityError:  # another caller recorded the same run_key first
        existing = _run_by_key(ws, run_key or "")
        if existing is None:
            raise
        return Invocation(name, existing["job_id"], existing["id"], False)
    if start:
        start_runner(ws, run.id)
    return Invocation(name, job.id, run.id, True)


def _run_by_key(ws: Workspace, run_key: str) -> dict[str, Any] | None:
    with ws.engine.connect() as conn:
        row = conn.execute(select(pipeline_runs.c.id, pipeline_runs.c.job_id)
                           .where(pipeline_runs.c.run_key == run_key)).first()
    return dict(row._mapping) if row is not None else None


def _run_by_job(ws: Workspace, job_id: str) -> dict[str, Any] | None:
    with ws.engine.connect() as conn:
        row = conn.execute(select(pipeline_runs.c.id, pipeline_runs.c.job_id)
                           .where(pipeline_runs.c.job_id == job_id)
                           .order_by(pipeline_runs.c.created_at.desc())).first()
    return dict(row._mapping) if row is not None else None


def invocations(ws: Workspace, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The endpoint's latest invocations (runs with their job's state), newest first."""
    get_endpoint(ws, name)
    from .pipelines import list_runs

    out = []
    for run in list_runs(ws.engine, limit=500):
        if run.pipeline != PIPELINE or run.params.get("endpoint") != name:
            continue
        entry = run.to_dict()
        if run.job_id:
            job = get_job(ws, run.job_id)
            entry["job"] = {"state": job.state, "items_total": job.items_total,
                            "items_succeeded": job.items_succeeded,
                            "items_failed": job.items_failed}
        out.append(entry)
        if len(out) >= limit:
            break
    return out


def start_runner(ws: Workspace, run_id: str) -> subprocess.Popen[bytes]:
    """Run ``run_id`` in a detached process (it outlives the caller); its output goes to
    ``runs/<id>/runner.log`` in the system store's local folder (or the temp folder)."""
    if ws.system.is_local:
        log_dir = ws.system.local_path("runs", run_id)
    else:
        import tempfile

        log_dir = Path(tempfile.gettempdir()) / "batchscore" / "runs" / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BATCHSCORE_WORKSPACE=str(ws.settings.root))
    with open(log_dir / "runner.log", "ab") as log:
        return subprocess.Popen(  # nosec B603  # argv list, our module
            [sys.executable, "-m", "batchscore.endpoints", run_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, close_fds=True,
        )


def _main(argv: list[str]) -> int:
    """``python -m batchscore.endpoints RUN_ID``: claim the queued run and execute it."""
    from .pipelines import claim_run, execute_run
    from .workspace import open_workspace

    if len(argv) != 1:
        print("usage: python -m batchscore.endpoints RUN_ID", file=sys.stderr)
        return 2
    ws = open_workspace()
    if not claim_run(ws, argv[0]):
        print(f"run {argv[0]} is not queued (another runner took it)", file=sys.stderr)
        return 0
    run = execute_run(ws, argv[0])
    print(f"run {run.id} {run.state}" + (f": {run.reason}" if run.reason else ""))
    return 0 if run.state == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
