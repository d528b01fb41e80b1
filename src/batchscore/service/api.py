"""The REST API under ``/api/v1``: pipelines and their runs, jobs, triggers, tokens, uploads,
signed downloads. Handlers are thin: they check the caller's role and call one function of
the library (``batchscore.pipelines``, ``batchscore.jobs``, ``batchscore.triggers``).

Jobs are shown with the locations an API client knows: data-store paths relative to the data
store (as every request gives them), system-store paths as ``system:...``; never the
service's own folders, never a password."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from fsspec.core import url_to_fs
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .. import jobs as job_api
from ..errors import InputError
from ..jobs.api import items_in_progress
from ..jobs.bundle import BundleTooLargeError
from ..paths import frames_dir, job_logs
from ..pipelines import (
    PIPELINES,
    cancel_run,
    data_url,
    get_pipeline,
    get_run,
    list_runs,
    request_run,
    resolve_data_path,
)
from ..redact import hide_environment, public_text, public_value
from ..triggers import create_trigger, get_trigger, ledger, list_triggers, remove_trigger
from .auth import ROLES, Principal, create_token, list_tokens, revoke_token
from .links import check_link, sign_link
from .submit import JobIn, prepare_job, record_job, store_locations

__all__ = ["require", "router"]

router = APIRouter()
_LOG_TAIL = 200_000  # characters of each worker log returned


def require(request: Request, role: str) -> Principal:
    """The caller, if its role allows ``role``; else 401 (who are you?) or 403 (not allowed)."""
    from .app import principal_of

    who = principal_of(request)
    if who is None:
        raise HTTPException(401, "a valid API token is required (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    if not who.can(role):
        raise HTTPException(403, f"token {who.name!r} has role {who.role}; this needs {role}")
    return who


def _service(request: Request) -> Any:
    return request.app.state.service


def _admin(request: Request) -> Principal:
    """The caller, if an admin: checked before the request body is validated."""
    return require(request, "admin")


# --- pipelines and runs ----------------------------------------------------------------------


@router.get("/pipelines", tags=["pipelines"])
def pipelines(request: Request) -> list[dict[str, Any]]:
    """The published pipelines and the JSON schema of their parameters."""
    require(request, "viewer")
    return [{"name": p.name, "summary": p.summary, "role": p.role,
             "parameters": p.params.model_json_schema()} for p in PIPELINES.values()]


def _start(request: Request, name: str, params: dict[str, Any]) -> dict[str, Any]:
    known = PIPELINES.get(name)
    who = require(request, known.role if known is not None else "operator")
    service = _service(request)
    get_pipeline(name)
    wait = service.limiter.take(who.name)
    if wait:
        raise HTTPException(429, f"too many runs started by {who.name!r}; try again in "
                            f"{wait:.0f}s", headers={"Retry-After": str(int(wait) + 1)})
    run = request_run(service.ws, name, params, created_by=who.name)
    service.slots.wake.set()
    return {**_run_view(service.ws, run), "links": _run_links(run.id)}


def _run_links(run_id: str) -> dict[str, str]:
    return {"self": f"/api/v1/runs/{run_id}", "output": f"/api/v1/runs/{run_id}/output"}


def _published(name: str) -> Any:
    model = PIPELINES[name].params

    def start(request: Request, params: Annotated[Any, Body()]) -> dict[str, Any]:
        return _start(request, name, params.model_dump(mode="json"))

    start.__annotations__ = {"request": Request, "params": Annotated[model, Body()],
                             "return": dict[str, Any]}
    start.__doc__ = f"Start a run of {name}: {PIPELINES[name].summary}"
    return start


for _name in PIPELINES:
    router.add_api_route(f"/pipelines/{_name}/runs", _published(_name), methods=["POST"],
                         status_code=202, tags=["pipelines"], name=f"start-{_name}")


@router.post("/pipelines/{name}/runs", status_code=202, tags=["pipelines"])
def start_any(request: Request, name: str, params: Annotated[dict[str, Any], Body()]
              ) -> dict[str, Any]:
    """Start a run of the pipeline ``name`` (an unknown name is 404)."""
    return _start(request, name, params)


@router.get("/runs", tags=["runs"])
def runs(request: Request, state: str | None = None, trigger: str | None = None,
         limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Pipeline runs, newest first, each with its job's progress."""
    require(request, "viewer")
    ws = _service(request).ws
    trigger_id = get_trigger(ws.engine, trigger).id if trigger else None
    return [_with_job(ws, _run_view(ws, r)) for r in
            list_runs(ws.engine, state=state, trigger_id=trigger_id, limit=limit)]


def _run_view(ws: Any, run: Any) -> dict[str, Any]:
    """A run as API clients see it: its locations as data-store paths (never the service's
    own folders), passwords hidden."""
    stores = store_locations(ws)
    data = run.to_dict()
    data["params"] = public_value(data["params"], stores)
    data["output_url"] = public_value(data["output_url"], stores)
    data["reason"] = public_text(data["reason"], stores) if data["reason"] else data["reason"]
    return data


def _with_job(ws: Any, run: dict[str, Any]) -> dict[str, Any]:
    if run["job_id"]:
        job = job_api.get_job(ws, run["job_id"])
        run["job"] = _job_summary(ws, job)
    else:
        run["job"] = None
    return run


def _job_view(ws: Any, job: Any) -> dict[str, Any]:
    data = hide_environment(job.public_dict(store_locations(ws)))
    data["items_in_progress"] = items_in_progress(ws, job)
    return data


def _job_summary(ws: Any, job: Any) -> dict[str, Any]:
    data = _job_view(ws, job)
    data.pop("spec", None)
    return data


@router.get("/runs/{run_id}", tags=["runs"])
def run(request: Request, run_id: str) -> dict[str, Any]:
    require(request, "viewer")
    ws = _service(request).ws
    return {**_with_job(ws, _run_view(ws, get_run(ws.engine, run_id))),
            "links": _run_links(run_id)}


@router.post("/runs/{run_id}/cancel", tags=["runs"])
def cancel(request: Request, run_id: str) -> dict[str, Any]:
    require(request, "operator")
    ws = _service(request).ws
    return _run_view(ws, cancel_run(ws, run_id))


@router.get("/runs/{run_id}/output", tags=["runs"])
def run_output(request: Request, run_id: str) -> dict[str, Any]:
    """A signed link to download the run's output, valid for a while."""
    require(request, "viewer")
    service = _service(request)
    found = get_run(service.ws.engine, run_id)
    if found.state != "succeeded" or not found.output_url:
        raise HTTPException(409, f"run {run_id} is {found.state}; it has no output yet")
    path = resolve_data_path(service.ws, found.output_url, "output")
    url, expires = sign_link(service.ws, path, service.config.link_ttl)
    return {"url": url, "expires": expires, "path": path}


# --- jobs ------------------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"])
def jobs(request: Request, state: str | None = None,
         limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    require(request, "viewer")
    ws = _service(request).ws
    return [_job_summary(ws, j) for j in job_api.list_jobs(ws, limit=limit, state=state)]


def _job_links(job_id: str, run_id: str | None = None) -> dict[str, str]:
    links = {"self": f"/api/v1/jobs/{job_id}", "minibatches": f"/api/v1/jobs/{job_id}/minibatches",
             "logs": f"/api/v1/jobs/{job_id}/logs"}
    return {**links, "run": f"/api/v1/runs/{run_id}"} if run_id else links


@router.post("/jobs", status_code=202, tags=["jobs"])
def submit(request: Request, body: JobIn, who: Annotated[Principal, Depends(_admin)]
           ) -> dict[str, Any]:
    """Submit an entry-script job (admin): its code (and a small model folder) travel in the
    bundle and are kept in the system store; inputs and output are data-store paths. Answers
    at once with the job's and its run's ids; the run slots run it. The same submission
    while its job is unfinished returns that job (``created`` false)."""
    service = _service(request)
    ws = service.ws
    try:
        prepared = prepare_job(ws, body)
        wait = service.limiter.take(who.name)
        if wait:
            raise HTTPException(429, f"too many runs started by {who.name!r}; try again in "
                                f"{wait:.0f}s", headers={"Retry-After": str(int(wait) + 1)})
        done = record_job(ws, prepared, created_by=who.name)
    except BundleTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    service.slots.wake.set()
    return {"job_id": done.job.id, "run_id": done.run_id, "created": done.created,
            "script": f"system:{done.script}",
            "job": _job_summary(ws, done.job), "links": _job_links(done.job.id, done.run_id)}


@router.get("/jobs/{job_id}", tags=["jobs"])
def job(request: Request, job_id: str) -> dict[str, Any]:
    require(request, "viewer")
    ws = _service(request).ws
    return _job_view(ws, job_api.get_job(ws, job_id))


@router.get("/jobs/{job_id}/minibatches", tags=["jobs"])
def minibatches(request: Request, job_id: str) -> list[dict[str, Any]]:
    """Each mini-batch: state, attempts, worker, times, error."""
    require(request, "viewer")
    ws = _service(request).ws
    stores = store_locations(ws)
    shown = []
    for mb in job_api.list_minibatches(ws, job_id):
        data = dataclasses.asdict(mb)
        data["items"] = public_value(mb.items, stores)
        data["error"] = public_text(mb.error, stores) if mb.error else mb.error
        shown.append(data)
    return shown


@router.get("/jobs/{job_id}/logs", tags=["jobs"])
def logs(request: Request, job_id: str) -> dict[str, Any]:
    """The job's logs from the system store: overview, events, errors, timings, per-frame
    batch timings (video) and the tail of every worker's stdout/stderr."""
    require(request, "viewer")
    ws = _service(request).ws
    stores = store_locations(ws)
    view = job_api.job_logs(ws, job_id)
    frames: list[dict[str, Any]] = []
    for rel in ws.system.list(frames_dir(job_logs(view.job_id))):
        frames += [json.loads(line) for line in ws.system.read_text(rel).splitlines()
                   if line.strip()]
    return {"job_id": view.job_id,
            "overview": public_value(view.overview, stores),
            "events": public_value(view.events, stores),
            "errors": public_text(view.errors, stores),
            "timings": public_value(view.timings, stores),
            "worker_logs": {k: public_text(v[-_LOG_TAIL:], stores)
                            for k, v in view.worker_logs.items()},
            "frames": frames}


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    require(request, "operator")
    ws = _service(request).ws
    return hide_environment(job_api.cancel_job(ws, job_id, wait=10.0)
                            .public_dict(store_locations(ws)))


# --- triggers --------------------------------------------------------------------------------


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    pipeline: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    prefix: str | None = Field(None, max_length=1024, description="Storage: folder to watch.")
    pattern: str = Field("*", max_length=200)
    output: str | None = Field(None, max_length=1024)
    marker: str | None = Field(None, max_length=200,
                               description="Wait for a marker file (such as 'trigger*').")
    settle_seconds: float = Field(2.0, ge=0, le=3600)
    cron: str | None = Field(None, max_length=100, description="Schedule: cron expression.")
    process_existing: bool = False


def _trigger_view(request: Request, trigger: Any) -> dict[str, Any]:
    service = _service(request)
    health = service.triggers.health.get(trigger.id)
    started = list_runs(service.ws.engine, trigger_id=trigger.id, limit=20)
    return {**trigger.to_dict(),
            "last_error": health.last_error if health else None,
            "last_scan": health.last_scan if health else None,
            "runs": [{"id": r.id, "state": r.state,
                      "input": public_value(r.params.get("input"), store_locations(service.ws)),
                      "created_at": r.created_at} for r in started]}


@router.get("/triggers", tags=["triggers"])
def triggers(request: Request) -> list[dict[str, Any]]:
    """Triggers, with their health and the runs they started."""
    require(request, "viewer")
    return [_trigger_view(request, t) for t in list_triggers(_service(request).ws.engine)]


@router.post("/triggers", status_code=201, tags=["triggers"])
def add_trigger(request: Request, body: TriggerIn) -> dict[str, Any]:
    require(request, "admin")
    service = _service(request)
    trigger = create_trigger(service.ws, **body.model_dump())
    service.triggers.wake.set()
    return _trigger_view(request, trigger)


@router.get("/triggers/{name}", tags=["triggers"])
def trigger(request: Request, name: str) -> dict[str, Any]:
    require(request, "viewer")
    service = _service(request)
    found = get_trigger(service.ws.engine, name)
    return {**_trigger_view(request, found), "ledger": ledger(service.ws.engine, found.id)}


@router.delete("/triggers/{name}", tags=["triggers"])
def delete_trigger(request: Request, name: str) -> dict[str, Any]:
    require(request, "admin")
    return remove_trigger(_service(request).ws, name).to_dict()


# --- tokens ----------------------------------------------------------------------------------


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(description=f"One of {', '.join(ROLES)}.")


@router.get("/tokens", tags=["tokens"])
def tokens(request: Request) -> list[dict[str, Any]]:
    require(request, "admin")
    return list_tokens(_service(request).ws.engine)


@router.post("/tokens", status_code=201, tags=["tokens"])
def add_token(request: Request, body: TokenIn) -> dict[str, Any]:
    """A new token; the response is the only place it is ever shown."""
    require(request, "admin")
    record, token = create_token(_service(request).ws.engine, body.name, body.role)
    return {**record, "token": token}


@router.delete("/tokens/{name}", tags=["tokens"])
def delete_token(request: Request, name: str) -> dict[str, str]:
    require(request, "admin")
    revoke_token(_service(request).ws.engine, name)
    return {"revoked": name}


# --- data: uploads and signed downloads ------------------------------------------------------


_MAX_NAME_BYTES = 255  # one file or folder name (what local filesystems allow)
_MAX_PATH_CHARS = 1024
# Only the service writes here: stream partitions and inference logs (and every job's
# output, looked up in the state database); an operator's upload may not replace them.
SERVICE_PREFIXES = ("streams/", "inference-logs/")


def upload_name(path: str) -> str:
    """``path`` of an upload, checked as names: non-empty parts without leading or trailing
    spaces (never silently stripped), each at most 255 bytes; else InputError (400)."""
    if len(path) > _MAX_PATH_CHARS:
        raise InputError(f"path is {len(path)} characters long; at most {_MAX_PATH_CHARS}")
    for part in path.split("/"):
        if part != part.strip():
            raise InputError(f"path {path!r}: the name {part!r} begins or ends with spaces; "
                             "rename it")
        if len(part.encode("utf-8")) > _MAX_NAME_BYTES:
            raise InputError(f"path {path[:60]!r}...: a name is longer than "
                             f"{_MAX_NAME_BYTES} bytes")
    return path


def _service_owned(ws: Any, rel: str) -> str | None:
    """Why ``rel`` (a data-store path) is the service's to write, or None."""
    if any(rel.startswith(p) or rel == p.rstrip("/") for p in SERVICE_PREFIXES):
        return f"{rel.split('/', 1)[0]}/ is written by the service only"
    from sqlalchemy import select

    from ..state.tables import jobs as jobs_table
    from ..state.tables import pipeline_runs

    target = data_url(ws, rel)
    with ws.engine.connect() as conn:
        outputs = {row[0] for row in conn.execute(select(jobs_table.c.output_url))}
        outputs |= {row[0] for row in conn.execute(select(pipeline_runs.c.output_url))
                    if row[0]}
    for out in outputs:
        base = out.rstrip("/")
        if target == base or target.startswith(base + "/"):
            return "it is a job's output, written by the service only"
    return None


@router.put("/data/{path:path}", status_code=201, tags=["data"])
async def upload(request: Request, path: str) -> dict[str, Any]:
    """Upload an input into the data store (operators); the body is the file. It appears
    under its name only when complete, so a trigger never sees half a file. Job outputs,
    stream partitions and inference logs are the service's: operators cannot write there."""
    who = require(request, "operator")
    ws = _service(request).ws
    rel = resolve_data_path(ws, upload_name(path), "path")
    if rel.endswith("/"):
        raise InputError(f"path {path!r} names a folder; give a file name")
    if not who.can("admin"):
        owned = await run_in_threadpool(_service_owned, ws, rel)
        if owned:
            raise HTTPException(403, f"path {rel!r} cannot be written by an operator: {owned}")
    fs, final = url_to_fs(data_url(ws, rel))
    parent = final.rsplit("/", 1)[0]
    try:
        if fs.isdir(final):
            raise InputError(f"path {rel!r} is a folder; give a file name")
        if parent:
            above = parent
            while above and not fs.exists(above):
                above = above.rsplit("/", 1)[0] if "/" in above else ""
            if above and not fs.isdir(above):
                name = above[len(final) - len(rel):]
                raise InputError(f"path {rel!r}: {name!r} is a file, not a folder")
            fs.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise InputError(f"path {rel!r} cannot be written: {exc.strerror or exc}") from None
    tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
    size = 0
    try:
        with fs.open(tmp, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                fh.write(chunk)
        fs.mv(tmp, final)
    except OSError as exc:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise InputError(f"path {rel!r} cannot be written: {exc.strerror or exc}") from None
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
    return {"path": rel, "size": size}


@router.get("/download", tags=["data"])
def download(request: Request, path: str, expires: int, sig: str) -> StreamingResponse:
    """Download a file of the data store through a signed link (no token needed)."""
    service = _service(request)
    ws = service.ws
    rel = resolve_data_path(ws, path, "path")
    check_link(ws, rel, expires, sig, max_ttl=service.config.link_max_ttl)
    fs, full = url_to_fs(data_url(ws, rel))
    if not fs.isfile(full):
        raise HTTPException(404, f"{rel} does not exist")

    def chunks() -> Iterator[bytes]:
        with fs.open(full, "rb") as fh:
            while block := fh.read(1024 * 1024):
                yield block

    name = rel.rsplit("/", 1)[-1]
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"Content-Disposition": content_disposition(name)})


def content_disposition(name: str) -> str:
    """``attachment`` with ``name``: an ASCII fallback, and the exact name in RFC 5987 form
    (``filename*=UTF-8''...``) so that any name travels in a Latin-1 header."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
