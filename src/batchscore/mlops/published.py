"""The published pipeline ``train-evaluate-register`` (:mod:`.flow` carries a run out)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError
from ..pipelines.contract import Pipeline
from ..pipelines.datastore import data_url, resolve_data_path
from ..workspace import Workspace

__all__ = ["TrainEvaluateRegister", "TrainParams"]


class TrainParams(BaseModel):
    """Parameters of ``train-evaluate-register``: retrain a project's model, evaluate it
    against production, register it (a schedule or new data under a prefix starts it)."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(description="The project folder (with params.yaml) on the service's "
                         "machine.", max_length=1024)
    input: str | None = Field(None, description="Training data in the data store (CSV or "
                              "Parquet; a storage trigger sets it); default: the project's "
                              "data.load().", max_length=1024)
    output: str | None = Field(None, description="Unused (storage triggers set it).",
                               max_length=1024)
    params: dict[str, str] = Field({}, description="params.yaml overrides, SECTION.KEY: VALUE.")


class TrainEvaluateRegister(Pipeline):
    name = "train-evaluate-register"
    summary = ("Retrain a project's model: data tests, train, evaluate against production, "
               "register (staging moves when it is better).")
    params = TrainParams
    role = "admin"
    sample_input = "data.csv"

    def check(self, ws: Workspace, params: TrainParams) -> None:
        from .project import load_project

        load_project(params.project, params.params)
        if params.input is not None:
            rel = resolve_data_path(ws, params.input, "input")
            if not rel.lower().endswith((".csv", ".parquet")):
                raise InputError(f"input {params.input!r} must be a .csv or .parquet file")

    def execute(self, ws: Workspace, params: TrainParams, run_id: str
                ) -> tuple[str, str | None]:
        from .flow import run_in_pipeline

        self.check(ws, params)
        source = (data_url(ws, resolve_data_path(ws, params.input, "input"))
                  if params.input else None)
        outcome = run_in_pipeline(ws, params.project, run_id, data_url=source,
                                  overrides=params.params)
        return "succeeded", f"{outcome.model_name} version {outcome.version}: {outcome.reason}"
