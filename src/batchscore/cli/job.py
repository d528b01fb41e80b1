"""``batchscore job``: run, list, show, logs, cancel and resume batch jobs.

``job run --server URL`` submits the job to a service instead of running it here: the scoring
script, its code folder and a small model folder travel in a bundle (kept in the service's
system store; an admin token is needed), and ``--input`` / ``--output`` name paths in the
service's data store. Local files are not uploaded: put them in the data store first
(``PUT /api/v1/data/<path>``)."""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .. import jobs as api
from ..errors import InputError, SpecError, UsageError
from ..jobs.runner import ProgressSnapshot
from ..redact import hide_password
from ..state.records import Job
from ..workspace import Workspace
from ._common import (
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    call_server,
    console,
    err_console,
    errors,
    key_values,
    open_ws,
)

__all__ = ["app"]

app = typer.Typer(
    help="Run and manage batch jobs.\n\n"
    "Example:\n\n"
    "    batchscore job run --scoring-script score.py --input images/ --output out/\n"
    "    batchscore job list",
    no_args_is_help=True,
)

JobId = Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")]
ExecutorOpt = Annotated[str | None, typer.Option(
    help="local (worker processes here) or ray (Ray actors); default: the workspace's "
    "executor.kind.", show_default=False)]
RayAddressOpt = Annotated[str | None, typer.Option(
    help="Ray cluster to join (ray://HOST:10001, HOST:6379 or auto); implies --executor ray. "
    "Default: the workspace's executor.ray_address, else a local Ray instance.",
    show_default=False)]

EnvManagerOpt = Annotated[str | None, typer.Option(
    help="local (the workers run the script in batchscore's Python) or virtualenv (in a "
    "cached virtualenv of the deployment's environment / MLflow model requirements).",
    show_default=False)]


def use_executor(ws: Workspace, executor: str | None, ray_address: str | None) -> str | None:
    """Apply --executor / --ray-address to this run; returns the executor to pass on."""
    if ray_address:
        ws.settings = replace(ws.settings, ray_address=ray_address)
        executor = executor or "ray"
    return executor


class _Bar:
    """A progress bar of mini-batches, with items succeeded and failed."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("mini-batches  {task.fields[items]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=err_console, disable=not enabled, transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, snap: ProgressSnapshot) -> None:
        items = f"items {snap.items_succeeded}/{snap.items_total} ok, {snap.items_failed} failed"
        done = snap.minibatches_done + snap.minibatches_failed
        if self.task is None:
            self.task = self.progress.add_task(snap.job_id, total=snap.minibatches_total,
                                               items=items)
        self.progress.update(self.task, completed=done, items=items)


def _finish(ws: Workspace, job: Job) -> None:
    if job.state == "succeeded":
        console.print(
            f"job {job.id} succeeded: {job.items_succeeded}/{job.items_total} items"
            + (f", {job.items_failed} failed" if job.items_failed else "")
        )
        console.print(f"output: {hide_password(job.output_url)}")
        return
    if job.state == "failed":
        raise api.failure(ws, job)
    console.print(f"job {job.id} {job.state}" + (f": {job.reason}" if job.reason else ""))
    raise typer.Exit(1)


@app.command()
def run(
    spec: Annotated[Path | None, typer.Argument(
        help="Deployment YAML in the Azure ML form (optional if --scoring-script is given).",
        show_default=False)] = None,
    input: Annotated[list[str], typer.Option(
        "--input", "-i", help="Input file, folder, glob or URL (repeatable).")] = [],  # noqa: B006
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Output folder (path or URL).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished output.")] = False,
    scoring_script: Annotated[str | None, typer.Option(
        help="Scoring script path (inside --code when that is given).")] = None,
    code: Annotated[str | None, typer.Option(help="Folder of the scoring script.")] = None,
    model_dir: Annotated[str | None, typer.Option(help="Model folder.")] = None,
    input_format: Annotated[str | None, typer.Option(
        help="files (default: run gets file paths), csv or parquet (run gets a DataFrame).")
    ] = None,
    partition_keys: Annotated[str | None, typer.Option(
        help="Comma-separated columns: each group of rows is one mini-batch.")] = None,
    mini_batch_size: Annotated[str | None, typer.Option(
        help="Files (or rows) per mini-batch, or a size such as 10kb for tables.")] = None,
    output_action: Annotated[str | None, typer.Option(help="append_row or summary_only.")
                             ] = None,
    output_file_name: Annotated[str | None, typer.Option()] = None,
    max_retries: Annotated[int | None, typer.Option()] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds per mini-batch.")] = None,
    error_threshold: Annotated[int | None, typer.Option(help="-1 ignores all failures.")
                               ] = None,
    logging_level: Annotated[str | None, typer.Option()] = None,
    max_concurrency_per_instance: Annotated[int | None, typer.Option(
        help="Worker processes per instance.")] = None,
    instance_count: Annotated[int | None, typer.Option()] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="KEY=VALUE set in the workers (repeatable).")] = None,
    workspace: WorkspaceOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    env_manager: EnvManagerOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    wait: Annotated[bool, typer.Option(
        help="With --server: follow the job to its end; the exit code is its outcome. "
        "(Without --server the job always runs here to its end.)")] = False,
) -> None:
    """Run a batch job and show its progress; running the same command again resumes it.

    With --server the job is submitted to that service (an admin token is needed): the
    script, its --code folder and --model-dir travel with it, --input and --output are paths
    in the service's data store, and the job id is printed at once (--wait follows it).

    Example:

        batchscore job run examples/diabetes-csv/deployment.yml \\
            --input 'data/*.csv' --input-format csv --output out/
        batchscore job run --scoring-script score.py --input images/ --output out/ \\
            --mini-batch-size 10 --max-concurrency-per-instance 2
        batchscore job run deployment.yml -i 'data/*.csv' -o out/ --executor ray \\
            --ray-address ray://head:10001
        batchscore job run deployment.yml -i 'incoming/*.csv' -o scored/ --wait \\
            --server http://scoring.internal:8000 --token $TOKEN
    """
    with errors():
        size: int | str | None = None
        if mini_batch_size is not None:
            size = int(mini_batch_size) if mini_batch_size.isdigit() else mini_batch_size
        retry: dict[str, Any] = {}
        if max_retries is not None:
            retry["max_retries"] = max_retries
        if timeout is not None:
            retry["timeout"] = timeout
        overrides: dict[str, Any] = dict(
            scoring_script=scoring_script, code=code, model_dir=model_dir,
            input_format=input_format, mini_batch_size=size, output_action=output_action,
            output_file_name=output_file_name, error_threshold=error_threshold,
            logging_level=logging_level, max_concurrency_per_instance=max_concurrency_per_instance,
            instance_count=instance_count, environment_variables=key_values(
                env, "--env {pair!r}: expected KEY=VALUE") or None,
            partition_keys=[k.strip() for k in partition_keys.split(",")]
            if partition_keys else None, env_manager=env_manager,
        )
        for key in ("scoring_script", "code", "model_dir"):
            if key == "scoring_script" and code and not Path(scoring_script or "").is_absolute():
                continue  # relative to --code, as code_configuration.scoring_script is
            if overrides[key] and "://" not in overrides[key] \
                    and not overrides[key].startswith(("azureml:", "models:/")):
                overrides[key] = str(Path(overrides[key]).resolve())
        if spec is not None:
            # --timeout / --max-retries and --env add to the file's settings, not replace them
            env_flags = overrides.pop("environment_variables")
            job_spec = api.load_spec(spec, **overrides)
            merged: dict[str, Any] = {}
            if retry:
                merged["retry_settings"] = {**job_spec.retry_settings.model_dump(), **retry}
            if env_flags:
                merged["environment_variables"] = {**job_spec.environment_variables,
                                                   **env_flags}
            if merged:
                job_spec = api.spec_from_mapping({**job_spec.model_dump(), **merged},
                                                 source=str(spec))
        else:
            if retry:
                overrides["retry_settings"] = retry
            job_spec = api.spec_from_mapping({}, source="command line", **overrides)
        if not input:
            raise SpecError("no input given: pass --input (a file, folder, glob or URL)")
        if not output:
            raise SpecError("no output given: pass --output (a folder path or URL)")
        if server:
            if executor or ray_address:
                raise UsageError("--executor and --ray-address cannot be used with --server "
                                 "(the service's settings choose where its jobs run)")
            _submit_remote(server, token, job_spec, input, output, overwrite=overwrite,
                           wait=wait, progress=progress and err_console.is_terminal)
            return
        ws = open_ws(workspace)
        executor = use_executor(ws, executor, ray_address)
        job, created = api.submit_job(ws, job_spec, input, output, overwrite=overwrite)
        if job_spec.env_manager == "virtualenv" and job_spec.options.get("environment_note"):
            err_console.print(f"note: {job_spec.options['environment_note']}")
        verb = "created" if created else "resuming"
        err_console.print(f"{verb} job {job.id}: {job.minibatches_total} mini-batches, "
                          f"{job.items_total} items, {job_spec.workers} worker(s)")
        with _Bar(progress and err_console.is_terminal) as bar:
            finished = api.resume_job(ws, job.id, progress=bar, executor=executor)
        _finish(ws, finished)


def _data_store_path(value: str, flag: str) -> str:
    """Refuse a path of this machine where the service expects a path of its data store."""
    if value.startswith(("/", "~", "file:")) or (len(value) > 2 and value[1] == ":"
                                                 and value[2] in "\\/"):
        raise InputError(
            f"{flag} {value!r} is a path on this machine; with --server, --input and --output "
            "are paths in the service's data store (such as incoming/x.csv). Upload local "
            "files first: curl -T FILE -H 'Authorization: Bearer TOKEN' "
            "SERVER/api/v1/data/incoming/FILE")
    return value


def _submit_remote(server: str, token: str | None, spec: api.JobSpec, inputs: list[str],
                   output: str, *, overwrite: bool, wait: bool, progress: bool) -> None:
    """Submit the job to the service (``POST /api/v1/jobs``) and print its id; with ``wait``
    follow it as ``endpoint invoke --wait`` does."""
    from ..jobs.bundle import pack_bundle
    from ..jobs.kinds import get_kind
    from .endpoint import _follow_remote

    if spec.kind != "script":
        raise SpecError(f"--server submits entry-script jobs; a {spec.kind} job runs through "
                        "a batch endpoint (batchscore endpoint create/invoke --server)")
    if spec.model_dir and spec.model_dir.startswith(("azureml:", "models:/")):
        raise SpecError(f"model {spec.model_dir!r} is a registered model of this workspace; "
                        "with --server give a local --model-dir (it travels with the script), "
                        "or create a deployment on the service (POST "
                        "/api/v1/endpoints/NAME/deployments)")
    for value in inputs:
        _data_store_path(value, "--input")
    _data_store_path(output, "--output")
    packed = pack_bundle(spec)  # the script, its code and model folders exist, are small
    get_kind(spec.kind).validate(spec)  # the script defines run(), checked here and now
    settings = spec.model_dump(mode="json", exclude={"code", "scoring_script", "model_dir"})
    body = {"spec": settings, "scoring_script": packed.scoring_script,
            "bundle": base64.b64encode(packed.archive).decode("ascii"),
            "inputs": inputs, "output": output, "overwrite": overwrite}
    sub = call_server(server, token, "POST", "/jobs", body)
    job = sub["job"]
    verb = "queued" if sub["created"] else f"already submitted ({job['display_state']})"
    console.print(f"job {sub['job_id']} {verb} on {server}: {job['minibatches_total']} "
                  f"mini-batches, {job['items_total']} items (run {sub['run_id']})")
    if not wait:
        console.print(f"follow it with: batchscore job show {sub['job_id']} --server {server}")
        return
    _follow_remote(server, token, sub["job_id"], progress)
    console.print(f"output: {job['output_url']}")


@app.command()
def resume(job_id: JobId, workspace: WorkspaceOpt = None,
           progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
           executor: ExecutorOpt = None, ray_address: RayAddressOpt = None) -> None:
    """Finish an interrupted job without re-running its finished mini-batches.

    Example:

        batchscore job resume job-20261121-1a2b3c4d
        batchscore job resume job-20261121-1a2b3c4d --executor ray --ray-address auto
    """
    with errors():
        ws = open_ws(workspace)
        executor = use_executor(ws, executor, ray_address)
        with _Bar(progress and err_console.is_terminal) as bar:
            job = api.resume_job(ws, job_id, progress=bar, executor=executor)
        _finish(ws, job)


@app.command("list")
def list_(
    workspace: WorkspaceOpt = None,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """List jobs, newest first.

    Example:

        batchscore job list --state failed
        batchscore job list --server http://scoring.internal:8000 --token $TOKEN
    """
    with errors():
        if server:
            jobs = call_server(server, token, "GET", "/jobs",
                               params={"limit": limit, **({"state": state} if state else {})})
        else:
            jobs = [j.public_dict() for j in api.list_jobs(open_ws(workspace), limit=limit,
                                                        state=state)]
        if as_json:
            console.print_json(json.dumps(jobs, default=str))
            return
        table = Table("id", "name", "state", "mini-batches", "items ok", "items failed",
                      "created")
        # Ids are what the other commands take: never shorten or wrap them (nor the state),
        # however narrow the terminal; the other columns give way.
        for column, key in ((table.columns[0], "id"), (table.columns[2], "display_state")):
            column.no_wrap = True
            column.min_width = max((len(j[key]) for j in jobs),
                                   default=len(str(column.header)))
        for j in jobs:
            table.add_row(j["id"], j["name"], j["display_state"], str(j["minibatches_total"]),
                          str(j["items_succeeded"]), str(j["items_failed"]),
                          _when(j["created_at"]))
        console.print(table, crop=False)


@app.command()
def show(job_id: JobId, workspace: WorkspaceOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
         server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Show a job: its state, settings, counts and failed mini-batches.

    Example:

        batchscore job show job-20261121-1a2b3c4d --json
    """
    with errors():
        if server:
            data = call_server(server, token, "GET", f"/jobs/{job_id}")
            mbs = call_server(server, token, "GET", f"/jobs/{data['id']}/minibatches")
        else:
            ws = open_ws(workspace)
            data = api.get_job(ws, job_id).public_dict()
            mbs = [dataclasses.asdict(mb) for mb in api.list_minibatches(ws, data["id"])]
        counts: dict[str, int] = {}
        for mb in mbs:
            counts[mb["state"]] = counts.get(mb["state"], 0) + 1
        data["minibatches"] = counts
        data["failed_minibatches"] = [
            {"idx": mb["idx"], "attempts": mb["attempts"],
             "error": (mb["error"] or "").strip()[-500:]}
            for mb in mbs if mb["state"] == "failed"
        ]
        if as_json:
            console.print_json(json.dumps(data, default=str))
            return
        for key in ("id", "name", "display_state", "reason", "output_url", "runner"):
            if data.get(key):
                console.print(f"{key:>14}: {data[key]}", highlight=False)
        console.print(f"{'created':>14}: {_when(data['created_at'])}")
        if data["finished_at"] and data["started_at"]:
            console.print(f"{'duration':>14}: {data['finished_at'] - data['started_at']:.2f}s")
        console.print(f"{'mini-batches':>14}: {data['minibatches_total']} {counts}")
        console.print(f"{'items':>14}: {data['items_total']} total, "
                      f"{data['items_succeeded']} ok, {data['items_failed']} failed")
        for mb in data["failed_minibatches"]:
            last = mb["error"].splitlines()[-1] if mb["error"] else ""
            console.print(f"  mini-batch {mb['idx']} failed after {mb['attempts']} "
                          f"attempt(s): {last}", highlight=False)


@app.command()
def logs(
    job_id: JobId,
    workspace: WorkspaceOpt = None,
    errors_only: Annotated[bool, typer.Option("--errors", help="Only the error file.")] = False,
    timings: Annotated[bool, typer.Option("--timings", help="Per mini-batch timings.")] = False,
    events: Annotated[bool, typer.Option("--events", help="The runner's events.")] = False,
    worker: Annotated[str | None, typer.Option(
        help="Print this worker's log file (a name from the list).")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a job's logs: overview, errors, timings, and every worker's stdout/stderr.

    Example:

        batchscore job logs job-20261121-1a2b3c4d --errors
    """
    with errors():
        if server:  # the service sends the tail of each worker's log
            view = call_server(server, token, "GET", f"/jobs/{job_id}/logs")
        else:
            view = dataclasses.asdict(api.job_logs(open_ws(workspace), job_id))
        worker_logs: dict[str, str] = view["worker_logs"]
        if errors_only:
            _print_file(view["errors"] or "no errors\n")
            return
        if timings or events:
            for rec in view["timings"] if timings else view["events"]:
                console.print(json.dumps(rec, default=str), highlight=False, markup=False)
            return
        if worker:
            matches = [n for n in worker_logs if worker in n]
            if not matches:
                raise SpecError(f"no worker log matches {worker!r}; "
                                f"logs: {', '.join(worker_logs) or 'none'}")
            for name in matches:
                console.print(f"==> {name} <==", highlight=False, markup=False)
                _print_file(worker_logs[name])
            return
        if view["overview"]:
            console.print_json(json.dumps(view["overview"]))
        n_errors = view["errors"].count("=== mini-batch")
        console.print(f"errors: {n_errors} failed attempt(s)"
                      + (" (see --errors)" if n_errors else ""))
        console.print(f"timings: {len(view['timings'])} record(s) (see --timings)")
        console.print("worker logs:")
        for name, text in worker_logs.items():
            console.print(f"  {name} ({len(text)} bytes)", highlight=False)


@app.command()
def cancel(job_id: JobId, workspace: WorkspaceOpt = None, server: ServerOpt = None,
           token: TokenOpt = None) -> None:
    """Cancel a job; a running one stops within seconds, keeping what it finished.

    Example:

        batchscore job cancel job-20261121-1a2b3c4d
    """
    with errors():
        if server:
            job = call_server(server, token, "POST", f"/jobs/{job_id}/cancel")
        else:
            job = api.cancel_job(open_ws(workspace), job_id).to_dict()
        console.print(f"job {job['id']} {job['state']}")


def _print_file(text: str) -> None:
    """Print a log file's text as it is, without adding a blank line after it."""
    console.print(text, end="" if text.endswith("\n") or not text else "\n")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


