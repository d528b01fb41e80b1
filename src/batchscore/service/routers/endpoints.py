"""Batch endpoints: create, list, show, delete, invoke.

``POST /api/v1/endpoints/{name}/invoke`` answers 202 with the job's and the run's ids at once;
the service's run slots run the job. Data pointers name paths inside the workspace's data store
(as every path of the API does) or a connection an admin registered (``connection:NAME``) with a
query / a table; database URLs are refused. An invocation whose input is a query answers with
its run's id only (``job_id`` null): the query runs when a run slot plans the job, never inside
the request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...apimodels import EndpointDetail, EndpointRecord, InvocationStarted
from ...connections import is_connection_ref
from ...endpoints import (
    PIPELINE,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    invocations,
    invoke_endpoint,
    list_endpoints,
    tabular_endpoint_spec,
)
from ...endpoints.published import BatchEndpointParams, check_endpoint_params, data_pointer
from ...pipelines import request_run
from ..context import service_of, ws_of
from ..deps import Admin, Operator, Viewer

__all__ = ["EndpointIn", "InvokeIn", "Settings", "router"]

router = APIRouter()


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mini_batch_size: int | str | None = None
    error_threshold: int | None = Field(None, ge=-1)
    max_concurrency_per_instance: int | None = Field(None, ge=1, le=256)
    instance_count: int | None = Field(None, ge=1, le=1024)
    retry_settings: dict[str, float] | None = None
    logging_level: str | None = None


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    model: str = Field(description="models:/NAME@ALIAS, models:/NAME/VERSION, or a model folder "
                       "on the service's machine; {Column} placeholders with group_by.",
                       max_length=1024)
    group_by: list[str] = Field([], max_length=32)
    keys: list[str] = Field([], max_length=256)
    features: list[str] | None = Field(None, max_length=10_000)
    prediction: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    settings: Settings = Settings()


class InvokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(min_length=1, max_length=1000,
                              description="Paths or globs in the data store, or one "
                              "connection:NAME (with query).")
    query: str | None = Field(None, max_length=100_000)
    output: str = Field(max_length=1024, description="A folder or .parquet/.csv path in the "
                        "data store, or connection:NAME (with table).")
    table: str | None = Field(None, max_length=200)
    overwrite: bool = False


def _links(name: str, job_id: str, run_id: str) -> dict[str, str]:
    return {"endpoint": f"/api/v1/endpoints/{name}", "job": f"/api/v1/jobs/{job_id}",
            "run": f"/api/v1/runs/{run_id}", "logs": f"/api/v1/jobs/{job_id}/logs"}


@router.get("/endpoints", tags=["endpoints"], response_model=list[EndpointRecord])
def endpoints(request: Request, who: Viewer) -> list[dict[str, Any]]:
    return [e.to_dict() for e in list_endpoints(ws_of(request))]


@router.post("/endpoints", status_code=201, tags=["endpoints"],
             response_model=EndpointRecord)
def create(request: Request, who: Admin, body: EndpointIn) -> dict[str, Any]:
    """Create a batch endpoint scoring a registered model or a model folder (admin)."""
    settings = body.settings.model_dump(exclude_none=True)
    spec = tabular_endpoint_spec(body.name, body.model, group_by=body.group_by, keys=body.keys,
                                 features=body.features, prediction=body.prediction,
                                 settings=settings)
    return create_endpoint(ws_of(request), body.name, spec, model=body.model,
                           description=body.description, created_by=who.name).to_dict()


@router.get("/endpoints/{name}", tags=["endpoints"], response_model=EndpointDetail,
            response_model_exclude_unset=True)
def endpoint(request: Request, who: Viewer, name: str) -> dict[str, Any]:
    """The endpoint and its latest invocations."""
    ws = ws_of(request)
    return {**get_endpoint(ws, name).to_dict(), "invocations": invocations(ws, name)}


@router.delete("/endpoints/{name}", tags=["endpoints"], response_model=EndpointRecord)
def delete(request: Request, who: Admin, name: str) -> dict[str, Any]:
    """Delete the endpoint (admin); its jobs and their outputs stay."""
    return delete_endpoint(ws_of(request), name).to_dict()


@router.post("/endpoints/{name}/invoke", status_code=202, tags=["endpoints"],
             response_model=InvocationStarted)
def invoke(request: Request, who: Operator, name: str, body: InvokeIn) -> dict[str, Any]:
    """Start a job of the endpoint over the inputs; answers at once with its ids."""
    service = service_of(request)
    ws = service.ws
    params = BatchEndpointParams(endpoint=name, inputs=body.inputs, query=body.query,
                                 output=body.output, table=body.table, overwrite=body.overwrite)
    check_endpoint_params(ws, params)
    service.take_run(who.name)
    if any(is_connection_ref(v) for v in body.inputs):
        # the query runs inside the job, never in this request: a run slot plans it
        run = request_run(ws, PIPELINE, params.model_dump(mode="json"), created_by=who.name)
        service.slots.wake.set()
        return {"endpoint": name, "job_id": None, "run_id": run.id, "created": True,
                "links": {**_links(name, "", run.id), "job": None, "logs": None}}
    inv = invoke_endpoint(
        ws, name, [data_pointer(ws, v, "input") for v in body.inputs],
        data_pointer(ws, body.output, "output"), query=body.query, table=body.table,
        overwrite=body.overwrite, created_by=who.name, start=False)
    service.slots.wake.set()
    return {**inv.to_dict(), "links": _links(name, inv.job_id, inv.run_id)}
