"""The published pipelines of batch work handed to the service: ``batch-endpoint`` (one
invocation of a batch endpoint) and ``batch-job`` (a job submitted with
``POST /api/v1/jobs``), with ``batch-job-query``, the unpublished pipeline that plans a
submitted job whose input is a registered connection's query inside its run, never inside
the HTTP request.

A caller of the service names data only as data-store paths or registered connections
(``connection:NAME``, :mod:`batchscore.connections`), never a database URL: a URL could name
any database the service reaches, its own state database included.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..connections import input_url, is_connection_ref, output_url
from ..errors import InputError, SpecError
from ..io.sql import is_database_url
from ..jobs.control import get_job
from ..jobs.spec import JobSpec
from ..pipelines.contract import Pipeline, Plan
from ..pipelines.datastore import data_url, resolve_data_path
from ..storage import Store
from ..workspace import Workspace
from .endpoints import get_endpoint
from .invocation import endpoint_job_spec, resolve_connections

__all__ = [
    "BatchEndpoint",
    "BatchEndpointParams",
    "BatchJob",
    "BatchJobParams",
    "BatchJobQuery",
    "BatchJobQueryParams",
    "check_endpoint_params",
    "data_pointer",
    "keep_submission",
]


def data_pointer(ws: Workspace, value: str, what: str) -> str:
    """A data-store path as its URL; a registered connection (``connection:NAME``) as it is.

    A database URL is refused: callers of the service name only the databases an admin
    registered (:mod:`batchscore.connections`)."""
    if is_connection_ref(value):
        (output_url if what == "output" else input_url)(ws, value)  # it exists, may serve
        return value
    if is_database_url(value):
        raise InputError(f"{what} is a database URL; name a connection an admin registered "
                         "(connection:NAME, see GET /api/v1/connections) instead")
    return data_url(ws, resolve_data_path(ws, value, what))


# --- batch-endpoint --------------------------------------------------------------------------


class BatchEndpointParams(BaseModel):
    """Parameters of ``batch-endpoint``: one invocation of a batch endpoint."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="The endpoint's name.", max_length=100)
    input: str | None = Field(None, description="One input (a storage trigger sets it): a "
                              "path in the data store, or connection:NAME with query.",
                              max_length=1024)
    inputs: list[str] = Field([], description="Inputs: paths or globs in the data store.",
                              max_length=1000)
    query: str | None = Field(None, description="SQL query when the input is connection:NAME.",
                              max_length=100_000)
    output: str = Field(description="A folder ending in '/' (then <folder>/<run id>/), a "
                        ".parquet/.csv path in the data store, or connection:NAME with table.",
                        max_length=1024)
    table: str | None = Field(None, description="SQL table when the output is connection:NAME.",
                              max_length=200)
    overwrite: bool = False

    def all_inputs(self) -> list[str]:
        return ([self.input] if self.input else []) + list(self.inputs)


def check_endpoint_params(ws: Workspace, p: BatchEndpointParams) -> None:
    get_endpoint(ws, p.endpoint)
    if not p.all_inputs():
        raise InputError(f"endpoint {p.endpoint!r}: no input given")
    for value in p.all_inputs():
        data_pointer(ws, value, "input")
    data_pointer(ws, p.output, "output")


class BatchEndpoint(Pipeline):
    name = "batch-endpoint"
    summary = "Invoke a batch endpoint: score data files or a SQL query with its model."
    params = BatchEndpointParams

    def check(self, ws: Workspace, params: BatchEndpointParams) -> None:
        check_endpoint_params(ws, params)

    def source(self, params: Any) -> str | None:
        value = super().source(params)
        if value is None or is_database_url(value) or is_connection_ref(value):
            return None
        return value

    def plan(self, ws: Workspace, params: BatchEndpointParams, run_id: str) -> Plan:
        check_endpoint_params(ws, params)
        spec = endpoint_job_spec(ws, get_endpoint(ws, params.endpoint), query=params.query,
                                 table=params.table)
        output = params.output
        if output.endswith("/") and not is_database_url(output):
            output = f"{output}{run_id}/"
        spec, inputs, target = resolve_connections(
            ws, spec, [data_pointer(ws, v, "input") for v in params.all_inputs()],
            data_pointer(ws, output, "output"))
        return Plan(spec, inputs, target)


# --- batch-job -------------------------------------------------------------------------------


class BatchJobParams(BaseModel):
    """Parameters of ``batch-job``: run a job submitted with ``POST /api/v1/jobs``."""

    model_config = ConfigDict(extra="forbid")

    job: str = Field(description="The job's id.", max_length=100)
    overwrite: bool = Field(False, description="A finished job runs again, replacing its "
                            "output.")


class BatchJob(Pipeline):
    # A run of it executes a job submitted with POST /api/v1/jobs to its end; asked for
    # again, an unfinished job resumes, a finished one runs again (with overwrite).
    name = "batch-job"
    summary = ("Run a batch job submitted with POST /api/v1/jobs (an entry script over "
               "files of the data store); an unfinished job resumes.")
    params = BatchJobParams
    role = "admin"

    def check(self, ws: Workspace, params: BatchJobParams) -> None:
        job = get_job(ws, params.job)
        if job.kind != "script":
            raise SpecError(f"job {job.id} is a {job.kind} job; batch-job runs entry-script "
                            "jobs")

    def plan(self, ws: Workspace, params: BatchJobParams, run_id: str) -> Plan:
        self.check(ws, params)
        job = get_job(ws, params.job)
        return Plan(JobSpec(**job.spec), list(job.inputs), job.output_url)


# --- batch-job-query: a submitted job over a connection's query, planned in its run ------------

_SUBMISSIONS = "submissions"  # system-store folder of the specs of submitted query jobs


class BatchJobQueryParams(BaseModel):
    """A submitted job whose input is a registered connection's query: its spec (kept in the
    system store, as its environment may hold secrets), its inputs and its output."""

    model_config = ConfigDict(extra="forbid")

    submission: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[str]
    output: str
    overwrite: bool = False


def keep_submission(system: Store, spec: JobSpec) -> str:
    """Keep ``spec`` in the system store under its digest (written once); returns it."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    if not system.exists(_SUBMISSIONS, f"{digest}.json"):
        system.write_text(f"{_SUBMISSIONS}/{digest}.json", text)
    return digest


class BatchJobQuery(Pipeline):
    name = "batch-job-query"
    summary = ("Plan and run a job submitted with POST /api/v1/jobs whose input is a "
               "connection's query (the query runs in the job, under the connection's limits).")
    params = BatchJobQueryParams
    role = "admin"
    published = False  # its runs are recorded by POST /api/v1/jobs only

    def check(self, ws: Workspace, params: BatchJobQueryParams) -> None:
        if not params.inputs or not all(is_connection_ref(v) for v in params.inputs):
            raise InputError("batch-job-query reads registered connections (connection:NAME)")
        resolve_data_path(ws, params.output, "output")

    def plan(self, ws: Workspace, params: BatchJobQueryParams, run_id: str) -> Plan:
        self.check(ws, params)
        text = ws.system.read_text(f"{_SUBMISSIONS}/{params.submission}.json")
        spec, urls, target = resolve_connections(ws, JobSpec(**json.loads(text)),
                                                 params.inputs, params.output)
        return Plan(spec, urls, target)
