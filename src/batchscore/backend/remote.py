"""The remote backend: every operation through a running service (:class:`Client`).

Paths given to it (inputs, outputs) are paths in the service's data store; what only this
machine has (a local scoring script, a video file) travels with the request or is refused
with the way to do it instead. The client's answers are typed (:mod:`batchscore.apimodels`);
what this backend hands to the CLI is their JSON, as the service sent it (:func:`plain`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..client import Client
from ..errors import InputError, OutputExistsError, SpecError, UsageError
from ..jobs.refs import is_model_ref
from .base import FINISHED, JSON, EndpointRequest, Reporter, StylizeRequest, snapshot

if TYPE_CHECKING:
    from ..apimodels import RunDetail, RunStarted
    from ..jobs.runner import ProgressSnapshot
    from ..jobs.spec import JobSpec

__all__ = ["RemoteBackend", "plain"]

POLL_SECONDS = 0.5
# the job settings a deployment made through the API takes (POST .../deployments)
DEPLOYMENT_SETTINGS = ("mini_batch_size", "error_threshold", "max_concurrency_per_instance",
                       "instance_count", "retry_settings", "logging_level")


def plain(answer: BaseModel) -> JSON:
    """An answer of the client as the JSON the service sent: its keys, in their order."""
    return answer.model_dump(by_alias=True, exclude_unset=True)


def plain_list(answers: Sequence[BaseModel]) -> list[JSON]:
    return [plain(a) for a in answers]


def progress(job: BaseModel, states: list[str]) -> ProgressSnapshot:
    """A job's progress from its answer (a job, or a run's job) and its mini-batches' states."""
    return snapshot(plain(job), states)


def data_store_path(value: str, flag: str) -> str:
    """Refuse a path of this machine where the service expects a path of its data store."""
    if value.startswith(("/", "~", "file:")) or (len(value) > 2 and value[1] == ":"
                                                 and value[2] in "\\/"):
        raise InputError(
            f"{flag} {value!r} is a path on this machine; with --server, --input and --output "
            "are paths in the service's data store (such as incoming/x.csv). Upload local "
            "files first: curl -T FILE -H 'Authorization: Bearer TOKEN' "
            "SERVER/api/v1/data/incoming/FILE")
    return value


class RemoteBackend:
    """The service at ``server`` with ``token`` (default: the local admin token of a
    service on this machine, see :func:`batchscore.client.local_token`)."""

    def __init__(self, server: str, token: str | None = None,
                 client: Client | None = None) -> None:
        self.server = server
        self.client = client or Client(server, token, keepalive=False)

    # --- jobs ------------------------------------------------------------------------------

    def cluster_status(self) -> JSON:
        return plain(self.client.cluster())

    def list_jobs(self, *, limit: int, state: str | None) -> list[JSON]:
        return plain_list(self.client.list_jobs(limit=limit, state=state))

    def get_job(self, job_id: str) -> JSON:
        return plain(self.client.get_job(job_id))

    def minibatches(self, job_id: str) -> list[JSON]:
        return plain_list(self.client.minibatches(job_id))

    def job_progress(self, job_id: str) -> ProgressSnapshot:
        job = self.client.get_job(job_id)
        return progress(job, [mb.state for mb in self.client.minibatches(job.id)])

    def job_logs(self, job_id: str) -> JSON:
        """The service sends the tail of each worker's log."""
        return plain(self.client.job_logs(job_id))

    def cancel_job(self, job_id: str) -> JSON:
        return plain(self.client.cancel_job(job_id))

    def run_job(self, spec: JobSpec, inputs: list[str], output: str, *, overwrite: bool,
                wait: bool, executor: str | None, ray_address: str | None,
                report: Reporter) -> int:
        """Submit the job (``POST /jobs``) and say its id; with ``wait`` follow it."""
        from ..jobs.bundle import pack_bundle
        from ..jobs.kinds import get_kind

        if executor or ray_address:
            raise UsageError("--executor and --ray-address cannot be used with --server "
                             "(the service's settings choose where its jobs run)")
        if spec.kind != "script":
            raise SpecError(f"--server submits entry-script jobs; a {spec.kind} job runs "
                            "through a batch endpoint (batchscore endpoint create/invoke "
                            "--server)")
        registered = spec.model_dir if is_model_ref(spec.model_dir) else None
        if registered and spec.scoring_script is None:
            raise SpecError(f"model {registered!r} has no scoring script here: with --server "
                            "a job runs an entry script; score an MLflow model without one "
                            "through a deployment (batchscore deployment create --server)")
        for value in inputs:
            data_store_path(value, "--input")
        data_store_path(output, "--output")
        # the script and its code (and a local model folder) exist and are small; a
        # registered model is resolved by the service, in its own registry
        local = spec.model_copy(update={"model_dir": None}) if registered else spec
        packed = pack_bundle(local)
        get_kind(spec.kind).validate(local)  # the script defines run(), checked here and now
        settings = spec.model_dump(mode="json", exclude={"code", "scoring_script", "model_dir"})
        sub = self.client.submit_job(settings, packed.scoring_script, packed.archive, inputs,
                                     output, overwrite=overwrite, model=registered)
        job, job_id = sub.job, sub.job_id
        if job is None or job_id is None:  # a connection's query plans its job in a run
            raise UsageError(f"run {sub.run_id} plans its job from a query on the service; "
                             "follow the run there")
        verb = "queued" if sub.created else f"already submitted ({job.display_state})"
        report.say(f"job {job_id} {verb} on {self.server}: {job.minibatches_total} "
                   f"mini-batches, {job.items_total} items (run {sub.run_id})")
        if not wait:
            report.say(f"follow it with: batchscore job show {job_id} "
                       f"--server {self.server}")
            return 0
        code = self.follow(job_id, report)
        if code == 0:
            report.say(f"output: {job.output_url}")
        return code

    def follow(self, job_id: str, report: Reporter) -> int:
        """Show the job's progress until it ends; say how: 0 if it succeeded, else 1."""
        with report.bar() as bar:
            while True:
                job = self.client.get_job(job_id)
                mbs = self.client.minibatches(job_id)
                bar(progress(job, [mb.state for mb in mbs]))
                if job.state in FINISHED:
                    break
                time.sleep(POLL_SECONDS)
        report.say(f"job {job.id} {job.state}: {job.items_succeeded}/{job.items_total} items"
                   + (f"; {job.reason}" if job.reason else ""))
        return 0 if job.state == "succeeded" else 1

    def resume_job(self, job_id: str, *, executor: str | None, ray_address: str | None,
                   report: Reporter) -> int:
        raise UsageError("job resume runs a job here; a service resumes its own jobs")

    # --- pipelines and runs ----------------------------------------------------------------

    def list_pipelines(self) -> list[JSON]:
        return plain_list(self.client.list_pipelines())

    def start_run(self, name: str, params: JSON, *, wait: bool, report: Reporter) -> JSON:
        """Queue the run in the service; with ``wait`` follow it to its end."""
        run: RunStarted | RunDetail = self.client.start_run(name, params)
        run_id = self._started(run, report)
        while wait and run.state not in FINISHED:
            time.sleep(POLL_SECONDS)
            run = self.client.get_run(run_id)
        return plain(run)

    def _started(self, run: RunStarted | RunDetail, report: Reporter) -> str:
        report.note(f"run {run.id} started on {self.server}")
        return str(run.id)

    def list_runs(self, *, state: str | None, limit: int) -> list[JSON]:
        return plain_list(self.client.list_runs(state=state, limit=limit))

    def get_run(self, run_id: str) -> JSON:
        return plain(self.client.get_run(run_id))

    def cancel_run(self, run_id: str) -> JSON:
        return plain(self.client.cancel_run(run_id))

    # --- triggers --------------------------------------------------------------------------

    def add_trigger(self, **fields: Any) -> JSON:
        return plain(self.client.add_trigger(**fields))

    def list_triggers(self) -> list[JSON]:
        return plain_list(self.client.list_triggers())

    def remove_trigger(self, name: str) -> None:
        self.client.delete_trigger(name)

    # --- endpoints and deployments ---------------------------------------------------------

    def create_endpoint(self, request: EndpointRequest, report: Reporter) -> None:
        """An endpoint scoring a registered model or a model folder of the service."""
        r = request
        if r.name is None:
            raise SpecError("no endpoint name given")
        if len(r.chosen) != 1 or r.file is not None:
            raise SpecError("give exactly one of --model, --script or --spec"
                            + (f" (got {', '.join(r.chosen)})" if r.chosen else ""))
        if r.model is None:
            raise SpecError("--server creates endpoints for --model only (scripts live on "
                            "this machine)")
        _refuse_env_manager((r.settings or {}).get("env_manager"))
        created = self.client.create_endpoint(
            r.name, r.model, group_by=r.group_by or [], keys=r.keys or [],
            prediction=r.prediction, features=r.features, description=r.description,
            settings={k: v for k, v in (r.settings or {}).items() if v is not None})
        report.say(f"endpoint {created.name} created ({created.kind})")

    def list_endpoints(self) -> list[JSON]:
        return plain_list(self.client.list_endpoints())

    def get_endpoint(self, name: str) -> JSON:
        return plain(self.client.get_endpoint(name))

    def delete_endpoint(self, name: str) -> None:
        self.client.delete_endpoint(name)

    def set_default_deployment(self, endpoint: str, deployment: str) -> None:
        self.client.set_default_deployment(endpoint, deployment)

    def invoke_endpoint(self, name: str, inputs: list[str], output: str, *,
                        query: str | None, table: str | None, overwrite: bool,
                        deployment: str | None, wait: bool, report: Reporter,
                        env_manager: str | None = None) -> int:
        """Start a job of the endpoint (of ``deployment``, else its default) in the service;
        with ``wait`` follow it."""
        _refuse_env_manager(env_manager)
        inv = self.client.invoke_endpoint(name, inputs, output, query=query, table=table,
                                          overwrite=overwrite, deployment=deployment)
        report.say(f"job {inv.job_id} queued (run {inv.run_id})")
        if wait and inv.job_id is None:  # a query input: its run plans the job later
            raise UsageError(f"run {inv.run_id} plans its job from a query on the service; "
                             "follow the run there")
        return self.follow(inv.job_id, report) if wait and inv.job_id else 0

    def create_deployment(self, endpoint: str, name: str, spec: JobSpec, *,
                          set_default: bool, description: str | None) -> JSON:
        """A deployment of a registered model (the service scores no local folder)."""
        model = spec.model_dir or ""
        _refuse_env_manager(spec.env_manager)
        if spec.scoring_script is not None:
            raise SpecError("with --server a deployment scores a registered MLflow model "
                            "without a scoring script (the service takes no script from the "
                            "network); create a deployment with code_configuration with "
                            "batchscore deployment create on the service's machine")
        if not model.startswith(("azureml:", "models:/")):
            raise SpecError(f"model {model!r}: with --server a deployment scores a registered "
                            "model (azureml:NAME@latest, azureml:NAME:VERSION, models:/...)")
        given = spec.model_dump(mode="json", exclude_unset=True)
        settings = {k: given[k] for k in DEPLOYMENT_SETTINGS if given.get(k) is not None}
        return plain(self.client.create_deployment(
            endpoint, name, model, set_default=set_default, description=description,
            settings=settings))

    def list_deployments(self, endpoint: str) -> list[JSON]:
        return plain_list(self.client.list_deployments(endpoint))

    def get_deployment(self, endpoint: str, name: str) -> JSON:
        return plain(self.client.get_deployment(endpoint, name))

    def delete_deployment(self, endpoint: str, name: str) -> None:
        self.client.delete_deployment(endpoint, name)

    def deployment_jobs(self, endpoint: str, name: str) -> list[JSON]:
        return plain_list(self.client.deployment_jobs(endpoint, name))

    # --- streams ---------------------------------------------------------------------------

    def create_stream(self, name: str, **settings: Any) -> JSON:
        return plain(self.client.create_stream(name, **settings))

    def list_streams(self) -> list[JSON]:
        return plain_list(self.client.list_streams())

    def stream_status(self, name: str) -> JSON:
        return plain(self.client.get_stream(name))

    def delete_stream(self, name: str, *, purge: bool) -> None:
        self.client.delete_stream(name, purge=purge)

    def stream_max_future(self, name: str) -> float:
        return float(self.client.get_stream(name).max_future_s)

    def send_events(self, name: str, events: list[JSON], *, source: str) -> int:
        return int(self.client.send_events(name, events).accepted)

    # --- video -----------------------------------------------------------------------------

    def stylize(self, request: StylizeRequest, report: Reporter) -> None:
        """Upload the video, start a video-style run, follow it, download its output and
        its quality report."""
        r = request
        _refuse_local_only(r)
        if not r.input.is_file():
            raise InputError(f"input video {str(r.input)!r} does not exist")
        if r.output.exists() and not r.overwrite:
            raise OutputExistsError(f"output {str(r.output)!r} exists; pass --overwrite to "
                                    "replace it")
        folder = f"cli/{uuid.uuid4().hex[:12]}"
        with r.input.open("rb") as fh:
            self.client.upload(f"incoming/{folder}/{r.input.name}", fh)
        run = self.client.start_run("video-style", {
            "input": f"incoming/{folder}/{r.input.name}",
            "output": f"outgoing/{folder}/{r.output.name}", "style": r.style or "0",
            "strength": r.strength, "max_size": r.max_size, "workers": r.workers,
            "segment_frames": r.segment_frames, "batch_size": r.batch_size})
        done = self._follow_frames(self._started(run, report), report)
        if done.state != "succeeded":
            raise UsageError(f"run {done.id} {done.state}: {done.reason or ''}".strip())
        self.client.download(self.client.run_output(done.id).url, r.output)
        frames = done.job.items_succeeded if done.job else "?"
        report.say(f"run {done.id} (job {done.job_id}): {frames} frames")
        report.say(f"output: {r.output.resolve()}")
        self._fetch_report(done.id, r, report)

    def _follow_frames(self, run_id: str, report: Reporter) -> RunDetail:
        with report.bar(frames=True) as bar:
            while True:
                run = self.client.get_run(run_id)
                if run.job:
                    bar(progress(run.job, []))  # the frames: its items
                if run.state in FINISHED:
                    return run
                time.sleep(POLL_SECONDS)

    def _fetch_report(self, run_id: str, r: StylizeRequest, report: Reporter) -> None:
        """The run's quality report and contact sheet, saved beside the downloaded output."""
        from pathlib import Path

        from ..errors import ServiceError
        from ..video.quality import report_paths
        from .local import video_report

        json_path, png_path = (Path(p) for p in report_paths(str(r.output.resolve())))
        for path, fetch in ((json_path, self.client.run_quality),
                            (png_path, self.client.run_contact_sheet)):
            try:
                path.write_bytes(fetch(run_id))
            except ServiceError as exc:
                report.note(f"no quality report from the service ({exc.status})")
                return
        video_report(r.output, report)


def _refuse_env_manager(env_manager: str | None) -> None:
    """The service's workspace setting (``executor.env_manager``) chooses where its jobs'
    scripts run: a client does not pick another Python environment on its machine."""
    if env_manager is not None:
        raise UsageError("--env-manager cannot be used with --server (the service's "
                         "workspace setting executor.env_manager chooses)")


def _refuse_local_only(r: StylizeRequest) -> None:
    """The service's video-style pipeline takes some of stylize's options; refuse the rest."""
    local_only = [flag for flag, used in (
        ("--style-image", r.style_image), ("--model-card", r.model_card),
        ("--temporal-smoothing", r.temporal_smoothing), ("--device", r.device != "cpu"),
        ("--no-report", not r.report), ("--max-size 0", r.max_size == 0),
        ("--threads", r.threads), ("--crf", r.crf), ("--preset", r.preset),
        ("--executor", r.executor), ("--ray-address", r.ray_address)) if used]
    if local_only:
        raise UsageError(f"{', '.join(local_only)} cannot be used with --server (the "
                         "service's video-style pipeline takes --style, --strength, "
                         "--max-size, --workers, --segment-frames, --batch-size)")
