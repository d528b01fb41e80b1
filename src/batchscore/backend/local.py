"""The local backend: every operation with this workspace's own functions, in this process.

The domains are imported where an operation needs them, so that a command loads only what it
runs (``batchscore job list`` never imports the video stack)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..jobs import control as jobs
from ..redact import hide_password
from ..state.jobs import Job
from ..workspace import Workspace, open_workspace
from .base import JSON, EndpointRequest, Reporter, StylizeRequest, snapshot

if TYPE_CHECKING:
    from ..jobs.runner import ProgressCallback, ProgressSnapshot
    from ..jobs.spec import JobSpec

__all__ = ["LocalBackend"]


class LocalBackend:
    """The workspace at ``workspace`` (default: ``$BATCHSCORE_WORKSPACE``, else
    ``./.batchscore``), opened when an operation first needs it."""

    def __init__(self, workspace: str | Workspace | None = None) -> None:
        self._where = workspace
        self._ws: Workspace | None = workspace if isinstance(workspace, Workspace) else None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = open_workspace(self._where)  # type: ignore[arg-type]
        return self._ws

    def use_executor(self, executor: str | None, ray_address: str | None) -> str | None:
        """Apply --executor / --ray-address to this run; returns the executor to pass on."""
        if ray_address:
            self.ws.settings = replace(self.ws.settings, ray_address=ray_address)
            executor = executor or "ray"
        return executor

    # --- jobs ------------------------------------------------------------------------------

    def cluster_status(self) -> JSON:
        from ..jobs.cluster import cluster_status

        return cluster_status(self.ws)

    def list_jobs(self, *, limit: int, state: str | None) -> list[JSON]:
        return [j.public_dict() for j in jobs.list_jobs(self.ws, limit=limit, state=state)]

    def get_job(self, job_id: str) -> JSON:
        return jobs.get_job(self.ws, job_id).public_dict()

    def minibatches(self, job_id: str) -> list[JSON]:
        return [dataclasses.asdict(mb) for mb in jobs.list_minibatches(self.ws, job_id)]

    def job_progress(self, job_id: str) -> ProgressSnapshot:
        job = jobs.get_job(self.ws, job_id)
        data = {**job.to_dict(), "items_in_progress": jobs.items_in_progress(self.ws, job)}
        return snapshot(data, [mb.state for mb in jobs.list_minibatches(self.ws, job.id)])

    def job_logs(self, job_id: str) -> JSON:
        return dataclasses.asdict(jobs.job_logs(self.ws, job_id))

    def cancel_job(self, job_id: str) -> JSON:
        return jobs.cancel_job(self.ws, job_id).to_dict()

    def run_job(self, spec: JobSpec, inputs: list[str], output: str, *, overwrite: bool,
                wait: bool, executor: str | None, ray_address: str | None,
                report: Reporter) -> int:
        """Submit the job and run it here to its end (``wait`` or not)."""
        executor = self.use_executor(executor, ray_address)
        job, created = jobs.submit_job(self.ws, spec, inputs, output, overwrite=overwrite)
        if job.spec.get("env_manager") == "virtualenv" \
                and spec.options.get("environment_note"):
            report.note(f"note: {spec.options['environment_note']}")
        return self.run_submitted(job, created, spec.workers, executor=executor, report=report)

    def run_submitted(self, job: Job, created: bool, workers: int, *, executor: str | None,
                      report: Reporter) -> int:
        """Run a job just submitted (or found again, ``created`` false) to its end."""
        verb = "created" if created else "resuming"
        report.note(f"{verb} job {job.id}: {job.minibatches_total} mini-batches, "
                    f"{job.items_total} items, {workers} worker(s)")
        with report.bar() as bar:
            finished = jobs.resume_job(self.ws, job.id, progress=bar, executor=executor)
        return self.finish(finished, report)

    def resume_job(self, job_id: str, *, executor: str | None, ray_address: str | None,
                   report: Reporter) -> int:
        executor = self.use_executor(executor, ray_address)
        with report.bar() as bar:
            job = jobs.resume_job(self.ws, job_id, progress=bar, executor=executor)
        return self.finish(job, report)

    def finish(self, job: Job, report: Reporter) -> int:
        """Say how the job ended: 0 if it succeeded; its failure (an error) if it failed."""
        if job.state == "succeeded":
            report.say(f"job {job.id} succeeded: {job.items_succeeded}/{job.items_total} items"
                       + (f", {job.items_failed} failed" if job.items_failed else ""))
            report.say(f"output: {hide_password(job.output_url)}")
            return 0
        if job.state == "failed":
            raise jobs.failure(self.ws, job)
        report.say(f"job {job.id} {job.state}" + (f": {job.reason}" if job.reason else ""))
        return 1

    # --- pipelines and runs ----------------------------------------------------------------

    def list_pipelines(self) -> list[JSON]:
        from ..pipelines import PIPELINES

        return [{"name": p.name, "summary": p.summary, "role": p.role,
                 "parameters": p.params.model_json_schema()} for p in PIPELINES.values()]

    def start_run(self, name: str, params: JSON, *, wait: bool, report: Reporter) -> JSON:
        """Run the pipeline here to its end (``wait`` or not)."""
        from ..pipelines import claim_run, execute_run, request_run

        queued = request_run(self.ws, name, params, created_by="cli")
        claim_run(self.ws, queued.id)
        return execute_run(self.ws, queued.id).to_dict()

    def list_runs(self, *, state: str | None, limit: int) -> list[JSON]:
        from ..pipelines import list_runs

        return [r.to_dict() for r in list_runs(self.ws.engine, state=state, limit=limit)]

    def get_run(self, run_id: str) -> JSON:
        from ..pipelines import get_run

        return get_run(self.ws.engine, run_id).to_dict()

    def cancel_run(self, run_id: str) -> JSON:
        from ..pipelines import cancel_run

        return cancel_run(self.ws, run_id).to_dict()

    # --- triggers --------------------------------------------------------------------------

    def add_trigger(self, **fields: Any) -> JSON:
        from ..triggers import create_trigger

        return create_trigger(self.ws, **fields).to_dict()

    def list_triggers(self) -> list[JSON]:
        from ..triggers import list_triggers

        return [t.to_dict() for t in list_triggers(self.ws.engine)]

    def remove_trigger(self, name: str) -> None:
        from ..triggers import remove_trigger

        remove_trigger(self.ws, name)

    # --- endpoints and deployments ---------------------------------------------------------

    def create_endpoint(self, request: EndpointRequest, report: Reporter) -> None:
        from ..endpoints import create_endpoint

        r = request
        if r.file is not None or (not r.chosen and r.name is not None):
            self._create_bare_endpoint(r, report)
            return
        if r.name is None:
            raise SpecError("no endpoint name given")
        if len(r.chosen) != 1:
            raise SpecError("give exactly one of --model, --script or --spec"
                            + (f" (got {', '.join(r.chosen)})" if r.chosen else ""))
        endpoint = create_endpoint(self.ws, r.name, self._endpoint_spec(r), model=r.model,
                                   description=r.description)
        report.say(f"endpoint {endpoint.name} created ({endpoint.kind}"
                   + (f", model {endpoint.model}" if endpoint.model else "") + ")")

    def _create_bare_endpoint(self, r: EndpointRequest, report: Reporter) -> None:
        """Azure's form: the endpoint alone; deployments come with deployment create."""
        from ..endpoints import create_bare_endpoint, load_endpoint_yaml

        if r.chosen or (r.settings or {}).get("env_manager"):
            given = r.chosen or ["--env-manager"]
            raise SpecError(f"--file creates an endpoint without deployments; give "
                            f"{', '.join(given)} to batchscore deployment create")
        declared = load_endpoint_yaml(r.file) if r.file is not None else {}
        name = r.name or declared.get("name")
        if not name:
            raise SpecError("no endpoint name given: pass NAME or name: in --file")
        made = create_bare_endpoint(self.ws, str(name),
                                    description=r.description or declared.get("description"))
        report.say(f"endpoint {made.name} created (no deployments yet: batchscore "
                   f"deployment create -f deployment.yml --endpoint-name {made.name})")

    def _endpoint_spec(self, r: EndpointRequest) -> JobSpec:
        from ..endpoints import tabular_endpoint_spec
        from ..jobs.spec import load_spec, spec_from_mapping

        assert r.name is not None
        settings = r.settings or {}
        if r.model is not None:
            return tabular_endpoint_spec(r.name, r.model, group_by=r.group_by or [],
                                         keys=r.keys or [], features=r.features,
                                         prediction=r.prediction, settings=settings)
        if r.group_by or r.keys or r.features or r.prediction:
            raise SpecError("--group-by, --keys, --features and --prediction go with --model")
        overrides = {**settings, "input_format": r.input_format,
                     "model_dir": str(r.model_dir.resolve()) if r.model_dir else None}
        if r.spec is not None:
            return load_spec(r.spec, name=r.name, **overrides)
        assert r.script is not None
        raw = {"name": r.name, "scoring_script": str(r.script.resolve()),
               "code": str(r.code.resolve()) if r.code else None}
        return spec_from_mapping(raw, source=f"endpoint {r.name!r}", **overrides)

    def list_endpoints(self) -> list[JSON]:
        from ..endpoints import list_endpoints

        return [e.to_dict() for e in list_endpoints(self.ws)]

    def get_endpoint(self, name: str) -> JSON:
        from ..endpoints import get_endpoint, invocations, list_deployments

        return {**get_endpoint(self.ws, name).to_dict(),
                "deployments": [d.to_dict() for d in list_deployments(self.ws, name)],
                "invocations": invocations(self.ws, name)}

    def delete_endpoint(self, name: str) -> None:
        from ..endpoints import delete_endpoint

        delete_endpoint(self.ws, name)

    def set_default_deployment(self, endpoint: str, deployment: str) -> None:
        from ..endpoints import set_default

        set_default(self.ws, endpoint, deployment)

    def invoke_endpoint(self, name: str, inputs: list[str], output: str, *,
                        query: str | None, table: str | None, overwrite: bool,
                        deployment: str | None, wait: bool, report: Reporter,
                        env_manager: str | None = None) -> int:
        """Start a job of the endpoint (in a runner of its own unless ``wait``: then here);
        ``env_manager`` (local, virtualenv) wins over the deployment's and the workspace's."""
        from ..endpoints import invoke_deployment
        from ..pipelines import claim_run, execute_run

        inv = invoke_deployment(self.ws, name, inputs, output, deployment=deployment,
                                query=query, table=table, overwrite=overwrite, start=not wait,
                                env_manager=env_manager)
        if not wait:
            report.say(f"job {inv.job_id} queued (run {inv.run_id}); follow it with: "
                       f"batchscore job show {inv.job_id}")
            return 0
        assert inv.job_id is not None
        with report.bar() as bar:
            if claim_run(self.ws, inv.run_id):
                execute_run(self.ws, inv.run_id, progress=bar)
            else:  # already taken by a service or a runner: follow the job
                self._follow(inv.job_id, bar)
        return self.finish(jobs.get_job(self.ws, inv.job_id), report)

    def create_deployment(self, endpoint: str, name: str, spec: JobSpec, *,
                          set_default: bool, description: str | None) -> JSON:
        from ..endpoints import create_deployment

        return create_deployment(self.ws, endpoint, name, spec, set_default=set_default,
                                 description=description).to_dict()

    def list_deployments(self, endpoint: str) -> list[JSON]:
        from ..endpoints import list_deployments

        return [d.to_dict() for d in list_deployments(self.ws, endpoint)]

    def get_deployment(self, endpoint: str, name: str) -> JSON:
        from ..endpoints import get_deployment

        return get_deployment(self.ws, endpoint, name).to_dict()

    def delete_deployment(self, endpoint: str, name: str) -> None:
        from ..endpoints import delete_deployment

        delete_deployment(self.ws, endpoint, name)

    def deployment_jobs(self, endpoint: str, name: str) -> list[JSON]:
        from ..endpoints import deployment_jobs

        return deployment_jobs(self.ws, endpoint, name)

    def _follow(self, job_id: str, bar: ProgressCallback) -> None:
        while True:
            progress = self.job_progress(job_id)
            bar(progress)
            if progress.state in ("succeeded", "failed", "canceled"):
                return
            time.sleep(0.5)

    # --- streams ---------------------------------------------------------------------------

    def create_stream(self, name: str, **settings: Any) -> JSON:
        from ..streaming import create_stream

        return create_stream(self.ws, name, **settings).to_dict()

    def list_streams(self) -> list[JSON]:
        from ..streaming import list_streams

        return [s.to_dict() for s in list_streams(self.ws)]

    def stream_status(self, name: str) -> JSON:
        from ..streaming.status import stream_status

        return stream_status(self.ws, name)

    def delete_stream(self, name: str, *, purge: bool) -> None:
        from ..streaming import delete_stream

        delete_stream(self.ws, name, purge=purge)

    def stream_max_future(self, name: str) -> float:
        from ..streaming import get_stream

        return get_stream(self.ws, name).max_future_s

    def send_events(self, name: str, events: list[JSON], *, source: str) -> int:
        from ..streaming import send_events

        return send_events(self.ws, name, events, source=source).accepted

    # --- video -----------------------------------------------------------------------------

    def stylize(self, request: StylizeRequest, report: Reporter) -> None:
        """Restyle the video here; a long one is calibrated first (the expected time)."""
        from ..video.job import stylize_job

        r = request
        ws = self.ws  # a missing workspace is said before any calibration
        executor = self.use_executor(r.executor, r.ray_address)
        if r.style_image is None and r.model_card is None:
            calibrate(r.input, r.style or "0", r.max_size, r.device, report)
        encoder = {k: v for k, v in (("crf", r.crf), ("preset", r.preset)) if v is not None}
        with report.bar(frames=True) as bar:
            job = stylize_job(
                ws, str(r.input), str(r.output), style=r.style,
                style_image=str(r.style_image) if r.style_image else None,
                model_card=str(r.model_card) if r.model_card else None, strength=r.strength,
                max_size=r.max_size, workers=r.workers, segment_frames=r.segment_frames,
                batch_size=r.batch_size, temporal_smoothing=r.temporal_smoothing,
                device=r.device, threads=r.threads, encoder=encoder or None,
                overwrite=r.overwrite, progress=bar, executor=executor, report=r.report,
            )
        if job.state != "succeeded":
            raise jobs.failure(self.ws, job)
        took = (job.finished_at or 0) - (job.started_at or 0)
        report.say(f"job {job.id}: {job.items_succeeded} frames in {took:.1f}s "
                   f"({job.items_succeeded / max(took, 1e-9):.1f} frames/s)")
        report.say(f"output: {r.output.resolve()}")
        if r.report:
            video_report(r.output, report)


def calibrate(input: Path, style: str, max_size: int, device: str, report: Reporter) -> None:
    """Before a long job: the expected time and a faster setting's content (calibrate.py)."""
    from ..video import calibrate as cal
    from ..video.probe import probe

    info = probe(input)
    if info.frame_count < cal.LONG_JOB_FRAMES:
        return
    report.note(f"{info.frame_count} frames: calibrating on a few of them ...")
    from ..video.quality import run_isolated

    found = run_isolated(cal.calibrate, input, {  # the job forks workers next: keep the
        "kind": "multistyle", "style": style,     # network's threads out of this process
        "max_size": max_size or None, "device": device}, info)
    for line in found.lines():
        report.note(line)


def video_report(output: Path, report: Reporter) -> None:
    """Say where a restyled video's quality report and contact sheet are, with its headline."""
    import json

    from ..video.quality import headline, report_paths

    json_path, png_path = (Path(p) for p in report_paths(str(output.resolve())))
    if not json_path.is_file():
        report.note(f"no quality report at {json_path}")
        return
    found = json.loads(json_path.read_text())
    report.say(f"quality: {headline(found)}")
    report.say(f"report: {json_path}")
    report.say(f"contact sheet: {png_path}")
