"""Published pipelines: a name, a parameter model, and the job that a run of it starts.

A **pipeline run** is a durable row (``pipeline_runs``) that points at the batch job it
started. Anything may ask for a run (the REST API, a storage trigger, a schedule): asking
validates the parameters and records the run as ``queued``; :func:`execute_run` (called by
the service's run slots) turns it into a job with the library's own functions and runs that
job to its end. A run whose service died is finished by :func:`execute_run` again: the job
resumes from its finished mini-batches.

Every path a run names lies inside the workspace's **data** store: a relative path
(``incoming/clip.mp4``) or a URL below the data store's URL; ``..``, absolute paths and URLs
of any other store are refused before anything is recorded.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from fsspec.core import has_magic, url_to_fs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, Engine, insert, select, update

from .errors import (
    BatchscoreError,
    InputError,
    PipelineNotFoundError,
    RunNotFoundError,
    SpecError,
    UsageError,
)
from .jobs.api import get_job, submit_job
from .jobs.runner import ProgressCallback, execute
from .jobs.spec import JobSpec
from .redact import hide_password
from .state.records import runner_name
from .state.tables import pipeline_runs
from .workspace import Workspace

__all__ = [
    "PIPELINES",
    "RUN_STATES",
    "BatchEndpointParams",
    "Pipeline",
    "PipelineNotFoundError",
    "Run",
    "RunNotFoundError",
    "TrainParams",
    "VideoStyleParams",
    "cancel_run",
    "create_run",
    "data_url",
    "execute_run",
    "get_pipeline",
    "get_run",
    "list_runs",
    "request_run",
    "resolve_data_path",
    "validate_params",
]

RUN_STATES = ("queued", "running", "succeeded", "failed", "canceled")
_FINISHED = ("succeeded", "failed", "canceled")


# --- paths inside the data store -------------------------------------------------------------


def data_url(ws: Workspace, rel: str) -> str:
    """The URL of ``rel`` (a path relative to the data store's root)."""
    base = ws.settings.data_store
    if base.endswith("://"):  # the account itself: az:// holds containers at its top
        return base + rel.lstrip("/")
    return f"{base.rstrip('/')}/{rel.lstrip('/')}"


def resolve_data_path(ws: Workspace, value: str, what: str = "path") -> str:
    """``value`` as a path relative to the data store, or :class:`InputError` saying why not.

    Accepts ``incoming/clip.mp4`` or a URL below the data store's URL; refuses ``..``,
    absolute paths, backslashes, control characters and URLs of other stores."""
    text = value.strip()
    if not text:
        raise InputError(f"{what} is empty; give a path inside the data store")
    if any(ord(c) < 32 for c in text) or "\\" in text:
        raise InputError(f"{what} {value!r} holds control characters or backslashes")
    if "://" in text:
        base = ws.settings.data_store
        root = base if base.endswith("://") else base.rstrip("/") + "/"
        if not text.startswith(root):
            raise InputError(
                f"{what} {value!r} is not in the data store ({base}); only paths inside the "
                "data store are accepted")
        text = text[len(root):]
    if text.startswith("/"):
        raise InputError(f"{what} {value!r} is absolute; give a path inside the data store")
    parts = text.split("/")
    if any(part in ("..", ".") for part in parts):
        raise InputError(f"{what} {value!r} leaves the data store ('..' and '.' are not allowed)")
    return text


# --- pipelines -------------------------------------------------------------------------------

_STYLE = re.compile(r"^\s*\d{1,2}(\s*:\s*[0-9.]+)?(\s*,\s*\d{1,2}(\s*:\s*[0-9.]+)?)*\s*$")
_VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")


class VideoStyleParams(BaseModel):
    """Parameters of ``video-style``: restyle one video of the data store into another."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="The video: a path in the data store, or its URL.",
                       max_length=1024)
    output: str = Field(
        description="A .mp4/.mov/.m4v path in the data store, or a folder ending in '/': "
        "then the output is <folder>/<run id>/<input name>.", max_length=1024)
    style: str = Field("0", description="Built-in style 0-25, or a blend such as 3:0.5,12:0.5.",
                       max_length=200)
    strength: float = Field(1.0, ge=0.0, le=1.0)
    max_size: int = Field(768, ge=16, le=4096, description="Long side the network runs at "
                          "(the default: docs/video.md, 'Choosing the network size').")
    workers: int = Field(2, ge=1, le=64)
    segment_frames: int | None = Field(None, ge=1, le=100_000)
    batch_size: int = Field(4, ge=1, le=256)
    overwrite: bool = False

    @field_validator("style", mode="before")
    @classmethod
    def _style(cls, value: Any) -> str:
        text = str(value)
        if not _STYLE.match(text):
            raise ValueError(f"style must be an index 0-25 or a blend such as 3:0.5,12:0.5, "
                             f"got {text!r}")
        return text.replace(" ", "")


@dataclass(frozen=True)
class Plan:
    """What a run turns into: a job spec, its inputs and its output (URLs)."""

    spec: JobSpec
    inputs: list[str]
    output: str


@dataclass(frozen=True)
class Pipeline:
    """A published pipeline: a run either becomes one batch job (``plan``) or is carried out
    by ``execute`` (``train-evaluate-register``: data tests, training, evaluation are not a
    batch job). ``role`` is what the REST API asks of a caller starting a run."""

    name: str
    summary: str
    params: type[BaseModel]
    check: Callable[[Workspace, Any], None]  # refuse bad paths before a run is recorded
    plan: Callable[[Workspace, Any, str], Plan] | None = None  # (ws, params, run id) -> job
    execute: Callable[[Workspace, Any, str], tuple[str, str | None]] | None = None
    role: str = "operator"


def _video_check(ws: Workspace, p: VideoStyleParams) -> None:
    rel = resolve_data_path(ws, p.input, "input")
    if has_magic(rel):
        raise InputError(f"input {p.input!r} is a pattern; video-style restyles one video: "
                         "give its path (no '*', '?' or '[')")
    if not rel.lower().endswith(_VIDEO_SUFFIXES):
        raise InputError(f"input {p.input!r} must be a video ({', '.join(_VIDEO_SUFFIXES)})")
    out = resolve_data_path(ws, p.output, "output")
    if not out.endswith("/") and not out.lower().endswith(_VIDEO_SUFFIXES):
        raise InputError(f"output {p.output!r} must end in {', '.join(_VIDEO_SUFFIXES)} or be "
                         "a folder ending in '/'")


def _video_output(ws: Workspace, p: VideoStyleParams, run_id: str) -> str:
    out = resolve_data_path(ws, p.output, "output")
    if out.endswith("/"):
        name = PurePosixPath(resolve_data_path(ws, p.input, "input")).name
        out = f"{out}{run_id}/{name}"
    return data_url(ws, out)


def _video_plan(ws: Workspace, p: VideoStyleParams, run_id: str) -> Plan:
    from .video.job import video_spec

    _video_check(ws, p)
    model = {"kind": "multistyle", "style": p.style, "max_size": p.max_size,
             "batch_size": p.batch_size, "strength": p.strength, "device": "cpu",
             "threads": 1}
    spec = video_spec(model, name=f"video-style {PurePosixPath(p.input).name}",
                      workers=p.workers, segment_frames=p.segment_frames,
                      batch_size=p.batch_size)
    output = _video_output(ws, p, run_id)
    if output.startswith("file://"):
        fs, path = url_to_fs(output)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    return Plan(spec, [data_url(ws, resolve_data_path(ws, p.input, "input"))], output)


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


def data_pointer(ws: Workspace, value: str, what: str) -> str:
    """A data-store path as its URL; a registered connection (``connection:NAME``) as it is.

    A database URL is refused: callers of the service name only the databases an admin
    registered (:mod:`batchscore.connections`); a URL could name any database the service
    reaches, its own state database included."""
    from .connections import input_url, is_connection_ref, output_url
    from .endpoints import is_database_url

    if is_connection_ref(value):
        (output_url if what == "output" else input_url)(ws, value)  # it exists, may serve
        return value
    if is_database_url(value):
        raise InputError(f"{what} is a database URL; name a connection an admin registered "
                         "(connection:NAME, see GET /api/v1/connections) instead")
    return data_url(ws, resolve_data_path(ws, value, what))


def check_endpoint_params(ws: Workspace, p: BatchEndpointParams) -> None:
    from .endpoints import get_endpoint

    get_endpoint(ws, p.endpoint)
    if not p.all_inputs():
        raise InputError(f"endpoint {p.endpoint!r}: no input given")
    for value in p.all_inputs():
        data_pointer(ws, value, "input")
    data_pointer(ws, p.output, "output")


def _endpoint_plan(ws: Workspace, p: BatchEndpointParams, run_id: str) -> Plan:
    from .endpoints import endpoint_job_spec, get_endpoint, is_database_url

    check_endpoint_params(ws, p)
    from .endpoints import resolve_connections

    spec = endpoint_job_spec(ws, get_endpoint(ws, p.endpoint), query=p.query, table=p.table)
    output = p.output
    if output.endswith("/") and not is_database_url(output):
        output = f"{output}{run_id}/"
    spec, inputs, target = resolve_connections(
        ws, spec, [data_pointer(ws, v, "input") for v in p.all_inputs()],
        data_pointer(ws, output, "output"))
    return Plan(spec, inputs, target)


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


def _train_check(ws: Workspace, p: TrainParams) -> None:
    from .mlops.project import load_project

    load_project(p.project, p.params)
    if p.input is not None:
        rel = resolve_data_path(ws, p.input, "input")
        if not rel.lower().endswith((".csv", ".parquet")):
            raise InputError(f"input {p.input!r} must be a .csv or .parquet file")


def _train_execute(ws: Workspace, p: TrainParams, run_id: str) -> tuple[str, str | None]:
    from .mlops.flow import run_in_pipeline

    _train_check(ws, p)
    source = data_url(ws, resolve_data_path(ws, p.input, "input")) if p.input else None
    outcome = run_in_pipeline(ws, p.project, run_id, data_url=source, overrides=p.params)
    return "succeeded", (f"{outcome.model_name} version {outcome.version}: {outcome.reason}")


class BatchJobParams(BaseModel):
    """Parameters of ``batch-job``: run a job submitted with ``POST /api/v1/jobs``."""

    model_config = ConfigDict(extra="forbid")

    job: str = Field(description="The job's id.", max_length=100)
    overwrite: bool = Field(False, description="A finished job runs again, replacing its "
                            "output.")


def _batch_job_check(ws: Workspace, p: BatchJobParams) -> None:
    job = get_job(ws, p.job)
    if job.kind != "script":
        raise SpecError(f"job {job.id} is a {job.kind} job; batch-job runs entry-script jobs")


def _batch_job_plan(ws: Workspace, p: BatchJobParams, run_id: str) -> Plan:
    _batch_job_check(ws, p)
    job = get_job(ws, p.job)
    return Plan(JobSpec(**job.spec), list(job.inputs), job.output_url)


PIPELINES: dict[str, Pipeline] = {
    "video-style": Pipeline(
        name="video-style",
        summary="Restyle every frame of a video with a built-in style, keeping its audio.",
        params=VideoStyleParams, check=_video_check, plan=_video_plan,
    ),
    "batch-endpoint": Pipeline(
        name="batch-endpoint",
        summary="Invoke a batch endpoint: score data files or a SQL query with its model.",
        params=BatchEndpointParams, check=check_endpoint_params, plan=_endpoint_plan,
    ),
    "train-evaluate-register": Pipeline(
        name="train-evaluate-register",
        summary="Retrain a project's model: data tests, train, evaluate against production, "
        "register (staging moves when it is better).",
        params=TrainParams, check=_train_check, execute=_train_execute, role="admin",
    ),
    # A run of it executes a job submitted with POST /api/v1/jobs to its end; asked for
    # again, an unfinished job resumes, a finished one runs again (with overwrite).
    "batch-job": Pipeline(
        name="batch-job",
        summary="Run a batch job submitted with POST /api/v1/jobs (an entry script over "
        "files of the data store); an unfinished job resumes.",
        params=BatchJobParams, check=_batch_job_check, plan=_batch_job_plan, role="admin",
    ),
}


def get_pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise PipelineNotFoundError(
            f"no pipeline named {name!r}; pipelines are {', '.join(sorted(PIPELINES))}"
        ) from None


def validate_params(ws: Workspace, name: str, params: dict[str, Any]) -> BaseModel:
    """The pipeline's parameters, validated (types, ranges, paths), or :class:`SpecError`."""
    pipeline = get_pipeline(name)
    try:
        model = pipeline.params.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'parameters'}: {e['msg']}"
            for e in exc.errors())
        raise SpecError(f"pipeline {name!r}: {problems}") from None
    pipeline.check(ws, model)
    return model


# --- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    id: str
    pipeline: str
    params: dict[str, Any]
    state: str
    run_key: str | None
    trigger_id: str | None
    job_id: str | None
    output_url: str | None
    reason: str | None
    created_by: str | None
    runner: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED

    def to_dict(self) -> dict[str, Any]:
        """For people and API clients: passwords in URLs hidden."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["output_url"] = hide_password(self.output_url) if self.output_url else None
        data["params"] = {k: _hidden(v) for k, v in self.params.items()}
        return data


def _hidden(value: Any) -> Any:
    if isinstance(value, str):
        return hide_password(value)
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return value


def _run(row: Any) -> Run:
    return Run(**{k: row._mapping[k] for k in Run.__dataclass_fields__})


def create_run(conn: Connection, pipeline: str, params: dict[str, Any], *,
               run_key: str | None = None, trigger_id: str | None = None,
               created_by: str | None = None, state: str = "queued",
               reason: str | None = None) -> Run:
    """Record a run inside the caller's transaction (an IntegrityError when ``run_key`` is
    taken: that run exists already)."""
    now = time.time()
    run_id = uuid.uuid4().hex[:16]
    values = dict(id=run_id, pipeline=pipeline, params=params, state=state, run_key=run_key,
                  trigger_id=trigger_id, job_id=None, output_url=None, reason=reason,
                  created_by=created_by, runner=None, created_at=now, started_at=None,
                  finished_at=now if state in _FINISHED else None)
    conn.execute(insert(pipeline_runs).values(**values))
    return Run(**values)  # type: ignore[arg-type]


def request_run(ws: Workspace, pipeline: str, params: dict[str, Any], *,
                created_by: str | None = None) -> Run:
    """Validate ``params`` and queue a run of ``pipeline``; the service's slots execute it."""
    model = validate_params(ws, pipeline, params)
    source = getattr(model, "input", None)
    if isinstance(source, str) and not _pattern_or_database(source):
        fs, path = url_to_fs(data_url(ws, resolve_data_path(ws, source, "input")))
        if not fs.isfile(path):
            raise InputError(f"input {source!r} does not exist in the data store")
    with ws.engine.begin() as conn:
        return create_run(conn, pipeline, model.model_dump(mode="json"),
                          created_by=created_by)


def _pattern_or_database(value: str) -> bool:
    from .connections import is_connection_ref
    from .endpoints import is_database_url

    return is_database_url(value) or is_connection_ref(value) or any(c in value for c in "*?[")


def get_run(engine: Engine | Connection, run_id: str) -> Run:
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return get_run(conn, run_id)
    row = engine.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)).first()
    if row is None:
        raise RunNotFoundError(f"no pipeline run with id {run_id!r}")
    return _run(row)


def list_runs(engine: Engine, *, state: str | None = None, trigger_id: str | None = None,
              limit: int = 50) -> list[Run]:
    """Runs, newest first."""
    if state is not None and state not in RUN_STATES:
        raise SpecError(f"unknown run state {state!r}; states are {', '.join(RUN_STATES)}")
    query = select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc()).limit(limit)
    if state is not None:
        query = query.where(pipeline_runs.c.state == state)
    if trigger_id is not None:
        query = query.where(pipeline_runs.c.trigger_id == trigger_id)
    with engine.connect() as conn:
        return [_run(row) for row in conn.execute(query)]


def _update(ws: Workspace, run_id: str, **values: Any) -> None:
    with ws.engine.begin() as conn:
        conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(**values))


def claim_run(ws: Workspace, run_id: str, runner: str | None = None) -> bool:
    """Move a queued run to running for ``runner``; False when someone else took it."""
    with ws.engine.begin() as conn:
        result = conn.execute(
            update(pipeline_runs)
            .where(pipeline_runs.c.id == run_id, pipeline_runs.c.state == "queued")
            .values(state="running", runner=runner or runner_name(), started_at=time.time()))
        return result.rowcount == 1


def _public(ws: Workspace, reason: str | None) -> str | None:
    """The reason without the stores' internal locations: data-store paths become relative
    (what API clients send), system-store paths ``system:...``."""
    if reason is None:
        return None
    for prefix, shown in ((ws.data.url, ""), (ws.data.root, ""),
                          (ws.system.url, "system:"), (ws.system.root, "system:")):
        reason = reason.replace(f"{prefix}/", shown)
    return reason


def _finish(ws: Workspace, run_id: str, state: str, reason: str | None) -> Run:
    reason = _public(ws, reason)
    with ws.engine.begin() as conn:
        conn.execute(update(pipeline_runs)
                     .where(pipeline_runs.c.id == run_id,
                            pipeline_runs.c.state.not_in(_FINISHED))
                     .values(state=state, reason=reason, finished_at=time.time()))
        return get_run(conn, run_id)


def execute_run(ws: Workspace, run_id: str, *, progress: ProgressCallback | None = None
                ) -> Run:
    """Run a claimed run's job to its end (starting the job, or resuming it); returns the
    finished run. Errors of the run's own making end it as ``failed`` with their message."""
    run = get_run(ws.engine, run_id)
    if run.finished:
        return run
    try:
        pipeline = get_pipeline(run.pipeline)
        if pipeline.execute is not None:
            state, reason = pipeline.execute(ws, pipeline.params.model_validate(run.params),
                                             run.id)
            return _finish(ws, run.id, state, reason)
        if run.job_id is None:
            assert pipeline.plan is not None
            plan = pipeline.plan(ws, pipeline.params.model_validate(run.params), run.id)
            job, _ = submit_job(ws, plan.spec, plan.inputs, plan.output,
                                overwrite=bool(run.params.get("overwrite", False)))
            _update(ws, run.id, job_id=job.id, output_url=job.output_url)
        else:
            job = get_job(ws, run.job_id)
        if not job.finished:
            job = execute(ws, job.id, progress=progress)
    except BatchscoreError as exc:
        return _finish(ws, run.id, "failed", str(exc))
    except Exception as exc:  # a bug or an unreachable store: keep the message on the run
        return _finish(ws, run.id, "failed", f"{type(exc).__name__}: {exc}")
    return _finish(ws, run.id, job.state, job.reason)


def cancel_run(ws: Workspace, run_id: str) -> Run:
    """Cancel a queued run at once; a running one through its job (its slot finishes it)."""
    from .jobs.api import cancel_job

    run = get_run(ws.engine, run_id)
    if run.finished:
        raise UsageError(f"run {run.id} already {run.state}; it cannot be canceled")
    if run.job_id is None:
        return _finish(ws, run.id, "canceled", "canceled by request")
    job = get_job(ws, run.job_id)
    if not job.finished:
        cancel_job(ws, job.id, wait=10.0)
    job = get_job(ws, run.job_id)
    if job.interrupted or job.finished:
        return _finish(ws, run.id, job.state if job.finished else "canceled", job.reason)
    return get_run(ws.engine, run.id)
