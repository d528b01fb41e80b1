"""Published pipelines and starting their runs: ``/pipelines``, ``/pipelines/{name}/runs``
(one operation per published pipeline, with its parameters' schema, and one for any name)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from ...apimodels import PipelineInfo, RunStarted
from ...pipelines import PIPELINES, get_pipeline, request_run
from ..auth import Principal
from ..context import service_of
from ..deps import Operator, Viewer, caller
from ..views import run_links, run_view

__all__ = ["router"]

router = APIRouter()


@router.get("/pipelines", tags=["pipelines"], response_model=list[PipelineInfo])
def pipelines(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """The published pipelines and the JSON schema of their parameters."""
    return [{"name": p.name, "summary": p.summary, "role": p.role,
             "parameters": p.params.model_json_schema()} for p in PIPELINES.values()]


def _start(request: Request, who: Principal, name: str, params: dict[str, Any]
           ) -> dict[str, Any]:
    service = service_of(request)
    get_pipeline(name)
    service.take_run(who.name)
    run = request_run(service.ws, name, params, created_by=who.name)
    service.slots.wake.set()
    return {**run_view(service.ws, run), "links": run_links(run.id)}


def _published(name: str) -> Any:
    model = PIPELINES[name].params

    def start(request: Request, who: Principal, params: Annotated[Any, Body()]
              ) -> dict[str, Any]:
        return _start(request, who, name, params.model_dump(mode="json"))

    start.__annotations__ = {"request": Request, "who": caller(PIPELINES[name].role),
                             "params": Annotated[model, Body()], "return": dict[str, Any]}
    start.__doc__ = f"Start a run of {name}: {PIPELINES[name].summary}"
    return start


for _name in PIPELINES:
    router.add_api_route(f"/pipelines/{_name}/runs", _published(_name), methods=["POST"],
                         status_code=202, tags=["pipelines"], name=f"start-{_name}",
                         response_model=RunStarted)


@router.post("/pipelines/{name}/runs", status_code=202, tags=["pipelines"],
             response_model=RunStarted)
def start_any(request: Request, who: Operator, name: str,
              params: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Start a run of the pipeline ``name`` (an unknown name is 404; a published pipeline's
    own operation above answers its name)."""
    return _start(request, who, name, params)
