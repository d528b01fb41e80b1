"""A typed client of the service's REST API (``/api/v1``), on httpx.

One method per operation the CLI uses (jobs, pipelines and runs, triggers, endpoints and
their deployments, streams, data uploads and downloads). Every answer is the model of
:mod:`batchscore.apimodels` that the service declares for it (``.model_dump(by_alias=True,
exclude_unset=True)`` gives back the JSON as it was sent, keys in their order); an answer that
does not fit its model is a :class:`batchscore.errors.ServiceError` naming it, and so is every
refusal (a UsageError: exit code 2), whose message carries the service's ``detail``; a
service that cannot be reached is a UsageError naming it. Example::

    from batchscore.client import Client

    with Client("http://scoring.internal:8000", token) as api:
        job = api.get_job("job-20261121-1a2b3c4d")
        print(job.display_state)

Without a token, a service on this machine (a loopback address) gets the admin token it wrote
in the workspace (``--workspace`` / ``$BATCHSCORE_WORKSPACE`` / ``./.batchscore``), and no
other host gets any.
"""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from .apimodels import (
    Cluster,
    DeploymentInvocationStarted,
    DeploymentRecord,
    DownloadLink,
    EndpointDetail,
    EndpointRecord,
    EventsAccepted,
    InvocationRun,
    InvocationStarted,
    JobLogsView,
    JobRecord,
    JobSubmitted,
    JobSummary,
    JobView,
    MiniBatchView,
    PipelineInfo,
    RunDetail,
    RunStarted,
    RunView,
    RunWithJob,
    StreamRecord,
    StreamStatus,
    StreamView,
    TriggerDetail,
    TriggerRecord,
    TriggerView,
    Uploaded,
)
from .config import find_workspace
from .errors import ServiceError, UsageError
from .tlsconfig import client_verify

__all__ = ["JSON", "Client", "local_token"]

M = TypeVar("M", bound=BaseModel)

JSON = dict[str, Any]
CALL_TIMEOUT = 60.0  # seconds for one API call
TRANSFER_TIMEOUT = 600.0  # seconds between bytes of an upload or a download


def local_token(server: str) -> str | None:
    """For a service on this machine (a loopback address), the admin token it wrote into the
    workspace (``--workspace``/``$BATCHSCORE_WORKSPACE``/``./.batchscore``); never sent to
    another host."""
    host = (urlsplit(server).hostname or "").lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    try:  # the file batchscore.service.auth.write_admin_token writes (not imported: no fastapi)
        return (find_workspace(None) / "service" / "admin.token").read_text().strip() or None
    except OSError:
        return None


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text


class Client:
    """The service at ``server`` (its base URL) with ``token`` (default: :func:`local_token`).

    ``transport`` replaces the network (an ``httpx.MockTransport`` or ``ASGITransport``).
    ``keepalive`` False closes each connection after its answer: for a caller that does not
    close the client (a CLI command), so that no idle connection outlives the call (a TLS
    server waits for its clients' connections to close when it stops)."""

    def __init__(self, server: str, token: str | None = None, *,
                 timeout: float = CALL_TIMEOUT, transfer_timeout: float = TRANSFER_TIMEOUT,
                 transport: httpx.BaseTransport | None = None, keepalive: bool = True) -> None:
        self.server = server
        self.base = server.rstrip("/")
        token = token or local_token(server)
        self.timeout = timeout
        self.transfer_timeout = transfer_timeout
        self._http = httpx.Client(
            base_url=self.base, transport=transport, timeout=timeout, verify=client_verify(),
            limits=httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0),
            headers={"Authorization": f"Bearer {token}"} if token else {})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the transport ---------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach the service at {self.server}: {exc}") from None

    def call(self, method: str, path: str, body: Any = None,
             params: dict[str, Any] | None = None) -> Any:
        """One call of ``/api/v1`` + ``path``: the answer's JSON, or a ServiceError."""
        response = self._send(method, f"/api/v1{path}", json=body, params=params)
        if response.status_code >= 400:
            raise ServiceError(f"the service answered {response.status_code}: "
                               f"{_detail(response)}", status=response.status_code)
        return response.json()

    def one(self, model: type[M], method: str, path: str, body: Any = None,
            params: dict[str, Any] | None = None) -> M:
        """:meth:`call`'s answer as ``model``."""
        return _fit(model, self.call(method, path, body, params), f"{method} {path}")

    def many(self, model: type[M], path: str, params: dict[str, Any] | None = None
             ) -> list[M]:
        """``GET path``'s answer, a list, as ``model``s."""
        answer = self.call("GET", path, params=params)
        if not isinstance(answer, list):
            raise ServiceError(f"the service's answer to GET {path} is not a list",
                               status=502)
        return [_fit(model, item, f"GET {path}") for item in answer]

    def _bytes(self, path: str) -> bytes:
        response = self._send("GET", f"/api/v1{path}")
        if response.status_code >= 400:
            raise ServiceError(f"the service answered {response.status_code}: "
                               f"{_detail(response)}", status=response.status_code)
        return response.content

    # --- jobs ------------------------------------------------------------------------------

    def cluster(self) -> Cluster:
        """``GET /cluster``: the executor in use, its nodes or worker processes."""
        return self.one(Cluster, "GET", "/cluster")

    def list_jobs(self, *, limit: int = 50, state: str | None = None) -> list[JobSummary]:
        return self.many(JobSummary, "/jobs", params={"limit": limit,
                                                  **({"state": state} if state else {})})

    def get_job(self, job_id: str) -> JobView:
        return self.one(JobView, "GET", f"/jobs/{_part(job_id)}")

    def minibatches(self, job_id: str) -> list[MiniBatchView]:
        return self.many(MiniBatchView, f"/jobs/{_part(job_id)}/minibatches")

    def job_logs(self, job_id: str) -> JobLogsView:
        """Overview, events, errors, timings and the tail of every worker's log."""
        return self.one(JobLogsView, "GET", f"/jobs/{_part(job_id)}/logs")

    def cancel_job(self, job_id: str) -> JobRecord:
        return self.one(JobRecord, "POST", f"/jobs/{_part(job_id)}/cancel")

    def submit_job(self, spec: JSON, scoring_script: str, bundle: bytes, inputs: list[str],
                   output: str, *, overwrite: bool = False, model: str | None = None
                   ) -> JobSubmitted:
        """Submit an entry-script job (admin): ``bundle`` is the archive of its code and
        model folders (:func:`batchscore.jobs.bundle.pack_bundle`); inputs and output are
        paths in the service's data store; ``model``, instead of a model folder in the
        bundle, a registered model of the service (``azureml:NAME@latest``, ...). Answers
        with ``job_id``, ``run_id``, ``created`` and ``job``."""
        return self.one(JobSubmitted, "POST", "/jobs", {
            "spec": spec, "scoring_script": scoring_script,
            "bundle": base64.b64encode(bundle).decode("ascii"), "inputs": inputs,
            "output": output, "overwrite": overwrite,
            **({"model": model} if model is not None else {})})

    # --- pipelines and runs ----------------------------------------------------------------

    def list_pipelines(self) -> list[PipelineInfo]:
        return self.many(PipelineInfo, "/pipelines")

    def start_run(self, pipeline: str, params: JSON) -> RunStarted:
        return self.one(RunStarted, "POST", f"/pipelines/{_part(pipeline)}/runs", params)

    def list_runs(self, *, state: str | None = None, limit: int = 20) -> list[RunWithJob]:
        return self.many(RunWithJob, "/runs", params={"limit": limit,
                                                  **({"state": state} if state else {})})

    def get_run(self, run_id: str) -> RunDetail:
        return self.one(RunDetail, "GET", f"/runs/{_part(run_id)}")

    def cancel_run(self, run_id: str) -> RunView:
        return self.one(RunView, "POST", f"/runs/{_part(run_id)}/cancel")

    def run_output(self, run_id: str) -> DownloadLink:
        """A signed link to the finished run's output: ``url`` (no token needed), ``path``."""
        return self.one(DownloadLink, "GET", f"/runs/{_part(run_id)}/output")

    def run_quality(self, run_id: str) -> bytes:
        """A video-style run's quality report (JSON bytes)."""
        return self._bytes(f"/runs/{_part(run_id)}/quality")

    def run_contact_sheet(self, run_id: str) -> bytes:
        """A video-style run's contact sheet (PNG bytes)."""
        return self._bytes(f"/runs/{_part(run_id)}/contact.png")

    # --- triggers --------------------------------------------------------------------------

    def list_triggers(self) -> list[TriggerView]:
        return self.many(TriggerView, "/triggers")

    def add_trigger(self, **body: Any) -> TriggerView:
        """Fields of ``POST /triggers``: name, pipeline, params, prefix, pattern, output,
        marker, settle_seconds, cron, process_existing."""
        return self.one(TriggerView, "POST", "/triggers", body)

    def get_trigger(self, name: str) -> TriggerDetail:
        return self.one(TriggerDetail, "GET", f"/triggers/{_part(name)}")

    def delete_trigger(self, name: str) -> TriggerRecord:
        return self.one(TriggerRecord, "DELETE", f"/triggers/{_part(name)}")

    # --- endpoints and deployments ---------------------------------------------------------

    def list_endpoints(self) -> list[EndpointRecord]:
        return self.many(EndpointRecord, "/endpoints")

    def create_endpoint(self, name: str, model: str, **fields: Any) -> EndpointRecord:
        """Fields of ``POST /endpoints``: group_by, keys, features, prediction, description,
        settings."""
        return self.one(EndpointRecord, "POST", "/endpoints",
                        {"name": name, "model": model, **fields})

    def get_endpoint(self, name: str) -> EndpointDetail:
        """The endpoint with its latest invocations (its runs)."""
        return self.one(EndpointDetail, "GET", f"/endpoints/{_part(name)}")

    def delete_endpoint(self, name: str) -> EndpointRecord:
        return self.one(EndpointRecord, "DELETE", f"/endpoints/{_part(name)}")

    def invoke_endpoint(self, name: str, inputs: list[str], output: str, *,
                        query: str | None = None, table: str | None = None,
                        overwrite: bool = False, deployment: str | None = None
                        ) -> InvocationStarted | DeploymentInvocationStarted:
        """Start a job of the endpoint (of ``deployment``, else its default): ``job_id``,
        ``run_id``."""
        body = {"inputs": inputs, "query": query, "output": output, "table": table,
                "overwrite": overwrite}
        if deployment:
            return self.one(DeploymentInvocationStarted, "POST",
                            f"{_deployment(name, deployment)}/invoke", body)
        return self.one(InvocationStarted, "POST", f"/endpoints/{_part(name)}/invoke", body)

    def endpoint_runs(self, name: str) -> list[InvocationRun]:
        """The endpoint's latest invocations, newest first."""
        return list(self.get_endpoint(name).invocations)

    def list_deployments(self, endpoint: str) -> list[DeploymentRecord]:
        return self.many(DeploymentRecord, f"/endpoints/{_part(endpoint)}/deployments")

    def get_deployment(self, endpoint: str, name: str) -> DeploymentRecord:
        return self.one(DeploymentRecord, "GET", _deployment(endpoint, name))

    def deployment_jobs(self, endpoint: str, name: str) -> list[InvocationRun]:
        return self.many(InvocationRun, f"{_deployment(endpoint, name)}/jobs")

    def create_deployment(self, endpoint: str, name: str, model: str, *,
                          set_default: bool = False, description: str | None = None,
                          settings: JSON | None = None) -> DeploymentRecord:
        return self.one(DeploymentRecord, "POST", f"/endpoints/{_part(endpoint)}/deployments", {
            "name": name, "model": model, "set_default": set_default,
            "description": description, "settings": settings or {}})

    def delete_deployment(self, endpoint: str, name: str) -> DeploymentRecord:
        return self.one(DeploymentRecord, "DELETE", _deployment(endpoint, name))

    def set_default_deployment(self, endpoint: str, name: str) -> DeploymentRecord:
        return self.one(DeploymentRecord, "PUT", f"/endpoints/{_part(endpoint)}/default",
                        {"deployment": name})

    # --- streams ---------------------------------------------------------------------------

    def list_streams(self) -> list[StreamView]:
        return self.many(StreamView, "/streams")

    def create_stream(self, name: str, **settings: Any) -> StreamRecord:
        """Fields of ``POST /streams``: window, lateness, aggregates, max_future, redis_url,
        redis_key, partition, endpoint, endpoint_output."""
        return self.one(StreamRecord, "POST", "/streams", {"name": name, **settings})

    def get_stream(self, name: str) -> StreamStatus:
        """Settings, counters, watermark, consumer and closed partitions."""
        return self.one(StreamStatus, "GET", f"/streams/{_part(name)}")

    def delete_stream(self, name: str, *, purge: bool = False) -> StreamRecord:
        return self.one(StreamRecord, "DELETE", f"/streams/{_part(name)}",
                         params={"purge": str(purge).lower()})

    def send_events(self, name: str, events: list[JSON]) -> EventsAccepted:
        """Append events (refused whole if one is bad): ``accepted``."""
        return self.one(EventsAccepted, "POST", f"/streams/{_part(name)}/events",
                        {"events": events})

    # --- data ------------------------------------------------------------------------------

    def upload(self, path: str, source: IO[bytes] | bytes) -> Uploaded:
        """Put ``source`` at ``path`` of the service's data store: ``path``, ``size``."""
        response = self._send("PUT", f"/api/v1/data/{quote(path)}", content=source,
                              timeout=self.transfer_timeout)
        if response.status_code >= 400:
            raise ServiceError(f"the service refused the upload ({response.status_code}): "
                               f"{response.text[:500]}", status=response.status_code)
        return _fit(Uploaded, response.json(), f"PUT /data/{path}")

    def download(self, url: str, target: Path) -> None:
        """Save what the signed link ``url`` (a path of this service, as
        :meth:`run_output` gives it) points to at ``target``, whole or not at all."""
        tmp = target.with_name(f".{target.name}.part")
        request = self._http.build_request("GET", url, timeout=self.transfer_timeout)
        request.headers.pop("Authorization", None)  # the link is its own permission
        try:
            response = self._http.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    raise ServiceError(f"download of the output failed "
                                       f"({response.status_code})",
                                       status=response.status_code)
                with tmp.open("wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"cannot reach the service at {self.server}: {exc}") from None
        tmp.replace(target)


def _fit(model: type[M], answer: Any, what: str) -> M:
    """``answer`` as ``model``, or a ServiceError saying where it does not fit (a service of
    another version)."""
    try:
        return model.model_validate(answer)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the answer"
        raise ServiceError(f"the service's answer to {what} is not a {model.__name__} "
                           f"({exc.error_count()} problem(s); {where}: {first['msg']})",
                           status=502) from None


def _deployment(endpoint: str, name: str) -> str:
    return f"/endpoints/{_part(endpoint)}/deployments/{_part(name)}"


def _part(value: str) -> str:
    """One path segment: whatever an id or a name holds stays inside it."""
    return quote(value, safe="")
