"""An endpoint's deployments in the REST API (:mod:`batchscore.endpoints.deployments`).

Viewers list and show deployments and their jobs, operators invoke one, admins create, delete
and choose the default. A deployment made through the API scores a **registered** model
(``azureml:NAME@latest``, ``azureml:NAME:VERSION``, ``models:/...``): an MLflow model runs
without a scoring script; scripts and model folders on the service's machine are not
accepted from the network (create such deployments with the CLI on that machine).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...apimodels import DeploymentInvocationStarted, DeploymentRecord, InvocationRun
from ...endpoints import (
    create_deployment,
    delete_deployment,
    deployment_jobs,
    get_deployment,
    invoke_deployment,
    list_deployments,
    set_default,
)
from ...endpoints.published import BatchEndpointParams, check_endpoint_params, data_pointer
from ...errors import SpecError
from ...jobs.spec import spec_from_mapping
from ..context import service_of, ws_of
from ..deps import Admin, Operator, Viewer
from .endpoints import InvokeIn, Settings

__all__ = ["DefaultIn", "DeploymentIn", "router"]

router = APIRouter()


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=32)
    model: str = Field(max_length=300, description="A registered model: azureml:NAME@latest, "
                       "azureml:NAME:VERSION, azureml:NAME@LABEL or models:/...")
    description: str | None = Field(None, max_length=2000)
    set_default: bool = False
    settings: Settings = Settings()


class DefaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(max_length=32)


@router.get("/endpoints/{name}/deployments", tags=["endpoints"],
            response_model=list[DeploymentRecord])
def deployments(request: Request, who: Viewer, name: str) -> list[dict[str, Any]]:
    return [d.to_dict() for d in list_deployments(ws_of(request), name)]


@router.get("/endpoints/{name}/deployments/{deployment}", tags=["endpoints"],
            response_model=DeploymentRecord)
def deployment(request: Request, who: Viewer, name: str, deployment: str) -> dict[str, Any]:
    return get_deployment(ws_of(request), name, deployment).to_dict()


@router.get("/endpoints/{name}/deployments/{deployment}/jobs", tags=["endpoints"],
            response_model=list[InvocationRun], response_model_exclude_unset=True)
def jobs(request: Request, who: Viewer, name: str, deployment: str) -> list[dict[str, Any]]:
    """The invocations that ran this deployment, newest first."""
    return deployment_jobs(ws_of(request), name, deployment)


@router.post("/endpoints/{name}/deployments", status_code=201, tags=["endpoints"],
             response_model=DeploymentRecord)
def create(request: Request, who: Admin, name: str, body: DeploymentIn) -> dict[str, Any]:
    """Add a deployment of a registered model to the endpoint (admin)."""
    if not body.model.startswith(("azureml:", "models:/")) or "://" in body.model:
        raise SpecError(f"model {body.model!r}: a deployment made through the API scores a "
                        "registered model (azureml:NAME@latest, azureml:NAME:VERSION, "
                        "models:/...)")
    spec = spec_from_mapping({"model": body.model, **body.settings.model_dump(
        exclude_none=True)}, source=f"deployment {body.name!r}")
    return create_deployment(ws_of(request), name, body.name, spec,
                             set_default=body.set_default, description=body.description,
                             created_by=who.name).to_dict()


@router.delete("/endpoints/{name}/deployments/{deployment}", tags=["endpoints"],
               response_model=DeploymentRecord)
def delete(request: Request, who: Admin, name: str, deployment: str) -> dict[str, Any]:
    return delete_deployment(ws_of(request), name, deployment).to_dict()


@router.put("/endpoints/{name}/default", tags=["endpoints"], response_model=DeploymentRecord)
def default(request: Request, who: Admin, name: str, body: DefaultIn) -> dict[str, Any]:
    """Make a deployment the endpoint's default (admin)."""
    return set_default(ws_of(request), name, body.deployment).to_dict()


@router.post("/endpoints/{name}/deployments/{deployment}/invoke", status_code=202,
             tags=["endpoints"], response_model=DeploymentInvocationStarted)
def invoke(request: Request, who: Operator, name: str, deployment: str, body: InvokeIn
           ) -> dict[str, Any]:
    """Start a job of this deployment over the inputs; answers at once with its ids."""
    service = service_of(request)
    ws = service.ws
    get_deployment(ws, name, deployment)
    params = BatchEndpointParams(endpoint=name, inputs=body.inputs, query=body.query,
                                 output=body.output, table=body.table, overwrite=body.overwrite)
    check_endpoint_params(ws, params)
    service.take_run(who.name)
    inv = invoke_deployment(
        ws, name, [data_pointer(ws, v, "input") for v in body.inputs],
        data_pointer(ws, body.output, "output"), deployment=deployment, query=body.query,
        table=body.table, overwrite=body.overwrite, created_by=who.name, start=False)
    service.slots.wake.set()
    return {**inv.to_dict(), "links": {"job": f"/api/v1/jobs/{inv.job_id}",
                                       "run": f"/api/v1/runs/{inv.run_id}"}}
