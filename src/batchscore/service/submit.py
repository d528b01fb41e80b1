"""Jobs submitted through the REST API (``POST /api/v1/jobs``): an entry script, its code and
a small model folder travel in a bundle; inputs and output are paths of the data store.

Submitting is two steps, so that a refused request leaves nothing behind:
:func:`prepare_job` checks everything (the settings, every path, that the inputs exist and
the output is free, the bundle's members and sizes) and writes nothing; :func:`record_job`
keeps the bundle in the system store (``scripts/<sha256>/``, see :mod:`batchscore.jobs.bundle`),
records the job (planned into mini-batches) and a queued run of the ``batch-job`` pipeline
pointing at it. The service's run slots then run it, as they run an endpoint's invocation.
A job whose input is a registered connection is planned by its run instead (a queued run of
``batch-job-query``): its query runs inside the job, read-only, under the connection's
statement timeout and row cap, never inside the HTTP request.

The same command submitted again gives the same bundle digest, hence the same spec and job
key: an unfinished job (and its run) is returned instead of a new one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..connections import is_connection_ref
from ..endpoints import resolve_connections
from ..endpoints.published import (
    BatchJob,
    BatchJobParams,
    BatchJobQuery,
    BatchJobQueryParams,
    data_pointer,
    keep_submission,
)
from ..errors import InputError, SpecError, UsageError
from ..jobs import bundle as bundles
from ..jobs.kinds import get_kind
from ..jobs.refs import is_model_ref
from ..jobs.spec import JobSpec, spec_from_mapping
from ..pipelines import Plan, data_url, resolve_data_path, submit_and_attach
from ..redact import Locations, public_text
from ..registry.assets import resolve_model
from ..state import runs
from ..state.jobs import Job
from ..workspace import Workspace

__all__ = [
    "MAX_SUBMIT_BODY_BYTES",
    "PIPELINE",
    "QUERY_PIPELINE",
    "JobIn",
    "PreparedJob",
    "Submission",
    "prepare_job",
    "record_job",
    "store_locations",
]

PIPELINE = BatchJob.name  # the pipeline whose runs execute submitted jobs
QUERY_PIPELINE = BatchJobQuery.name  # ... and plan those whose input is a connection's query
# The largest request body POST /api/v1/jobs needs: the bundle in base64, plus the rest.
MAX_SUBMIT_BODY_BYTES = 4 * ((bundles.MAX_BUNDLE_BYTES + 2) // 3) + bundles.MiB
# Keys of a spec that name files on the submitting machine: the bundle carries those.
_LOCAL_KEYS = ("code", "scoring_script", "model_dir", "model", "code_configuration")


class JobIn(BaseModel):
    """A job to submit: settings, the bundle, and data-store paths."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="Job settings in the Azure ML deployment form (mini_batch_size, "
        "retry_settings, error_threshold, input_format, environment_variables, ...), without "
        "code or model paths: those travel in the bundle.")
    scoring_script: str = Field(max_length=1024,
                                description="The entry script's path inside code/ of the bundle.")
    bundle: str = Field(description="Base64 of a .tar.gz holding code/... (the script's folder) "
                        "and optionally model/<name>/... (the model folder); at most "
                        f"{bundles.MAX_BUNDLE_BYTES // bundles.MiB} MiB.")
    inputs: list[str] = Field(min_length=1, max_length=1000,
                              description="Paths or globs in the data store (or "
                              "connection:NAME with input_format sql).")
    output: str = Field(max_length=1024, description="The output folder in the data store.")
    overwrite: bool = False
    model: str | None = Field(
        None, max_length=300, description="A registered model of the service's workspace "
        "(azureml:NAME@latest, azureml:NAME:VERSION, azureml:NAME@LABEL, models:/...), "
        "resolved when the job is recorded: the job's model folder. The bundle then holds "
        "no model/ folder.")


@dataclass(frozen=True)
class PreparedJob:
    """A checked request: nothing is written yet."""

    spec: JobSpec  # without code
    archive: bytes
    scoring_script: str
    inputs: list[str]  # URLs, or registered connections (connection:NAME)
    output: str  # URL
    overwrite: bool
    model: str | None = None  # a registered model (azureml:..., models:/...), or the bundle's

    @property
    def reads_a_connection(self) -> bool:
        """True when an input is a registered connection: its query runs in the job, planned
        by a run slot, never in the HTTP request."""
        return any(is_connection_ref(v) for v in self.inputs)


@dataclass(frozen=True)
class Submission:
    job: Job | None  # None: a run slot plans it (its input is a connection's query)
    run_id: str
    created: bool  # False: the same job was submitted before and is not finished
    script: str  # the bundle's folder in the system store


def store_locations(ws: Workspace) -> Locations:
    """How the workspace's stores are shown to API clients: data-store paths relative (as
    the API takes them), system-store paths ``system:...``, registered connections'
    URLs ``connection:NAME``."""
    locations = []
    for store, label in ((ws.data, ""), (ws.system, "system:")):
        # a whole account (az://, whose containers are the first path part) stays az://
        locations.append((store.url + "//" if store.url.endswith(":") else store.url, label))
        if store.is_local:
            locations.append((store.root, label))
    from ..connections import list_connections

    # a job through a registered connection records its URL: shown by the connection's name
    locations.extend((c.url, f"connection:{c.name}") for c in list_connections(ws))
    return locations


@contextlib.contextmanager
def _public_errors(ws: Workspace) -> Iterator[None]:
    """Errors name data-store paths as the client gave them, never the service's folders."""
    try:
        yield
    except UsageError as exc:
        shown = public_text(str(exc), store_locations(ws))
        if shown == str(exc):
            raise
        clean = copy.copy(exc)
        clean.args = (shown,)
        raise clean from None


def _settings(raw: dict[str, Any]) -> JobSpec:
    for key in _LOCAL_KEYS:
        if key in raw:
            raise SpecError(f"spec.{key} names files on the submitting machine; the code and "
                            "the model folder travel in the bundle (code/..., model/<name>/...) "
                            "and the entry script is scoring_script")
    spec = spec_from_mapping(raw, source="spec")
    if spec.kind != "script":
        raise SpecError(f"spec.kind {spec.kind!r}: jobs submitted to the service run an entry "
                        "script (kind script); score registered models with a batch endpoint "
                        "(POST /api/v1/endpoints)")
    return spec


def _decode(bundle: str, limit: int) -> bytes:
    if len(bundle) > 4 * ((limit + 2) // 3):
        raise bundles.BundleTooLargeError(
            f"the script bundle is larger than the limit of {limit} bytes "
            f"({limit / bundles.MiB:g} MiB)")
    try:
        return base64.b64decode(bundle, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"bundle is not valid base64: {exc}") from None


def _input_url(ws: Workspace, value: str) -> str:
    """A data-store path as its URL; ``connection:NAME`` as it is (resolved with its limits
    by :func:`~batchscore.endpoints.resolve_connections`); a database URL is refused."""
    return data_pointer(ws, value, "input")


def prepare_job(ws: Workspace, body: JobIn, limit: int | None = None) -> PreparedJob:
    """Check a submission and write nothing: the settings, every path (inside the data store:
    no ``..``, absolute path or other store), that each input matches files, that the output
    is free, and the bundle (sizes, members, the entry script among them)."""
    limit = bundles.MAX_BUNDLE_BYTES if limit is None else limit
    with _public_errors(ws):
        spec = _settings(body.spec)
        pointers = [_input_url(ws, value) for value in body.inputs]
        resolved, urls, _ = resolve_connections(ws, spec, pointers, "")  # no query runs here
        output = data_url(ws, resolve_data_path(ws, body.output, "output")).rstrip("/")
        kind = get_kind(spec.kind)
        for url in urls:  # each one matches files (errors name the data-store path)
            kind.expand_inputs(resolved, [url])
        kind.check_output(resolved, output, body.overwrite)
        archive = _decode(body.bundle, limit)
        bundles.check_bundle(archive, body.scoring_script, limit)
        _check_model(ws, body.model, archive)
    if any(is_connection_ref(v) for v in pointers):  # resolved again by the run that plans it
        return PreparedJob(spec, archive, body.scoring_script, pointers, output, body.overwrite,
                           body.model)
    return PreparedJob(resolved, archive, body.scoring_script, urls, output, body.overwrite,
                       body.model)


def _check_model(ws: Workspace, model: str | None, archive: bytes) -> None:
    """``model``, when given, is a registered model of this workspace (never a path or a
    URL: what a client sends does not name the service's files) and the bundle holds no
    model folder beside it."""
    if model is None:
        return
    if not is_model_ref(model) or "://" in model:
        raise SpecError(f"model {model!r}: a job submitted to the service takes a registered "
                        "model (azureml:NAME@latest, azureml:NAME:VERSION, models:/...); a "
                        "model folder travels in the bundle (model/<name>/...)")
    if bundles.bundle_model(archive) is not None:
        raise SpecError(f"model {model!r} is given and the bundle holds a model folder too: "
                        "send one of them")
    resolve_model(ws, model)  # an unknown name or version: one error naming what exists


def record_job(ws: Workspace, prepared: PreparedJob, *, created_by: str | None = None
               ) -> Submission:
    """Keep the bundle in the system store, record the job and a queued ``batch-job`` run
    (or find the unfinished job of the same submission and its run). A job reading a
    connection is recorded as a queued ``batch-job-query`` run instead: the run slot that
    executes it plans the job, running the query there under the connection's limits."""
    with _public_errors(ws):
        stored = bundles.store_bundle(ws.system, prepared.archive, prepared.scoring_script)
        spec = prepared.spec.model_copy(update={
            "code": stored.code, "scoring_script": stored.scoring_script,
            "model_dir": prepared.model or stored.model_dir})  # a reference: resolved here
        if prepared.reads_a_connection:
            get_kind(spec.kind).validate(spec)  # the script, the query's text: refused now
            params = BatchJobQueryParams(
                submission=keep_submission(ws.system, spec), inputs=prepared.inputs,
                output=prepared.output, overwrite=prepared.overwrite)
            with ws.engine.begin() as conn:
                run = runs.create_run(conn, QUERY_PIPELINE, params.model_dump(mode="json"),
                                      created_by=created_by)
            return Submission(None, run.id, True, stored.prefix)
        attached = submit_and_attach(
            ws, PIPELINE, Plan(spec, prepared.inputs, prepared.output),
            lambda job: BatchJobParams(job=job.id, overwrite=prepared.overwrite)
            .model_dump(mode="json"),
            overwrite=prepared.overwrite, created_by=created_by)
    return Submission(attached.job, attached.run.id, attached.job_created, stored.prefix)
