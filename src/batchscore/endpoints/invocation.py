"""Invoking a batch endpoint (or one of its deployments): a job started asynchronously.

Invoking an endpoint with pointers to data (files, globs, a SQL query through a registered
connection ``connection:NAME``, see :mod:`batchscore.connections`, or from the local command
line a database URL) and an output (a folder, a file, a SQL table) starts a job
**asynchronously**, like a managed batch endpoint: :func:`invoke_endpoint` validates and plans
the job (so bad input is refused at once), records it with a pipeline run of
``batch-endpoint`` that points at it, and returns their ids. The run is then executed by the
service's run slots, or, outside a service, by a detached runner process that
:func:`invoke_endpoint` starts (``start=True``).

A model reference with an alias (``models:/NAME@production``) is resolved to its version
when the endpoint is invoked, so the job records exactly which version scored the data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError, SpecError
from ..jobs.control import get_job
from ..jobs.spec import JobSpec, spec_from_mapping
from ..pipelines.contract import Plan, submit_and_attach
from ..registry.models import get_version
from ..state.runs import list_runs, run_by_key
from ..workspace import Workspace, machine_dir
from .deployments import get_deployment
from .endpoints import Endpoint, get_endpoint
from .specs import check_model_location, is_registry_ref, templated, with_registry

__all__ = [
    "PIPELINE",
    "Invocation",
    "deployment_jobs",
    "endpoint_job_spec",
    "invocations",
    "invoke_deployment",
    "invoke_endpoint",
    "resolve_connections",
    "start_runner",
]

PIPELINE = "batch-endpoint"  # the pipeline whose runs are an endpoint's invocations


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    job_id: str
    run_id: str
    created: bool  # False: the same invocation was running already, its ids are returned

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def endpoint_job_spec(ws: Workspace, endpoint: Endpoint, *, query: str | None = None,
                      table: str | None = None) -> JobSpec:
    """The spec of one invocation: the endpoint's, plus the data pointers' settings, with an
    aliased registry reference resolved to its version (so the job says what scored it)."""
    spec = with_registry(ws, JobSpec(**endpoint.spec))
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
    if spec.kind == "tabular" and is_registry_ref(model) and not templated(model):
        version = get_version(ws, model)
        options["model"] = version.uri
        options["model_ref"] = model
    return spec.model_copy(update={"options": options})


def resolve_connections(ws: Workspace, spec: JobSpec, inputs: Sequence[str], output: str
                        ) -> tuple[JobSpec, list[str], str]:
    """Inputs and output naming registered connections (``connection:NAME``) as their URLs,
    and the spec with the input connection's query limits (``options.sql_limits``)."""
    from ..connections import input_url, is_connection_ref, output_url

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
    env_manager: str | None = None,
) -> Invocation:
    """Start a job of endpoint ``name`` over ``inputs`` into ``output``; returns at once.

    The job is validated and planned here (bad pointers, a failing query, a model that does
    not resolve are errors now), then recorded as queued with a ``batch-endpoint`` run. With
    ``start`` a detached process runs it; a service's run slots take it otherwise. ``run_key``
    makes the call idempotent (a stream's closed partition invokes its endpoint once).
    ``deployment`` / ``deployment_spec``: the deployment that runs (recorded in the run's
    parameters) and its spec, when it is not the endpoint's default
    (:func:`invoke_deployment`). ``env_manager`` (local, virtualenv) wins over the
    deployment's and the workspace's setting."""
    if run_key is not None:
        existing = run_by_key(ws.engine, run_key)
        if existing is not None:
            return Invocation(name, existing.job_id, existing.id, False)  # type: ignore[arg-type]
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
    if env_manager is not None:
        spec = spec_from_mapping({**spec.model_dump(), "env_manager": env_manager},
                                 source="--env-manager")
    spec, urls, target = resolve_connections(ws, spec, inputs, output)
    from ..connections import is_connection_ref

    named = any(is_connection_ref(v) for v in [*inputs, output])  # never show their URLs
    attached = submit_and_attach(
        ws, PIPELINE, Plan(spec, urls, target),
        lambda job: {"endpoint": name,
                     "inputs": list(inputs) if named else list(job.inputs),
                     "output": output if named else job.output_url,
                     "query": query, "table": table, "overwrite": overwrite,
                     **({"deployment": deployment} if deployment else {})},
        overwrite=overwrite, run_key=run_key, created_by=created_by,
        shown_output=output if named else None)
    if not attached.run_created:
        return Invocation(name, attached.run.job_id or attached.job.id, attached.run.id, False)
    if start:
        start_runner(ws, attached.run.id)
    return Invocation(name, attached.job.id, attached.run.id, True)


def invocations(ws: Workspace, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The endpoint's latest invocations (runs with their job's state), newest first."""
    get_endpoint(ws, name)
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


def start_runner(ws: Workspace, run_id: str) -> subprocess.Popen[bytes]:
    """Run ``run_id`` in a detached process (it outlives the caller); its output goes to
    ``runs/<id>/runner.log`` in the system store's local folder (or the temp folder)."""
    if ws.system.is_local:
        log_dir = ws.system.local_path("runs", run_id)
    else:
        log_dir = machine_dir("runs", run_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BATCHSCORE_WORKSPACE=str(ws.settings.root))
    with open(log_dir / "runner.log", "ab") as log:
        return subprocess.Popen(  # nosec B603  # argv list, our module
            [sys.executable, "-m", "batchscore.pipelines", run_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, close_fds=True,
        )
