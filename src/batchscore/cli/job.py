"""``batchscore job``: run, list, show, logs, cancel and resume batch jobs.

``job run --server URL`` submits the job to a service instead of running it here: the scoring
script, its code folder and a small model folder travel in a bundle (kept in the service's
system store; an admin token is needed), and ``--input`` / ``--output`` name paths in the
service's data store. Local files are not uploaded: put them in the data store first
(``PUT /api/v1/data/<path>``)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import SpecError
from ..jobs.spec import spec_with_overrides
from ._common import (
    EnvManagerOpt,
    ExecutorOpt,
    RayAddressOpt,
    Report,
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    backend,
    batch_size,
    console,
    err_console,
    errors,
    key_values,
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

SpecArg = Annotated[Path | None, typer.Argument(
    help="Deployment YAML in the Azure ML form (optional if --scoring-script is given).",
    show_default=False)]
InputFormatOpt = Annotated[str | None, typer.Option(
    help="files (default: run gets file paths), csv or parquet (run gets a DataFrame).")]
PartitionKeysOpt = Annotated[str | None, typer.Option(
    help="Comma-separated columns: each group of rows is one mini-batch.")]
WaitOpt = Annotated[bool, typer.Option(
    help="With --server: follow the job to its end; the exit code is its outcome. "
    "(Without --server the job always runs here to its end.)")]


@app.command()
def run(
    spec: SpecArg = None,
    input: Annotated[list[str], typer.Option(
        "--input", "-i", help="Input file, folder, glob or URL (repeatable).")] = [],  # noqa: B006
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Output folder (path or URL).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished output.")] = False,
    scoring_script: Annotated[str | None, typer.Option(
        help="Scoring script path (inside --code when that is given).")] = None,
    code: Annotated[str | None, typer.Option(help="Folder of the scoring script.")] = None,
    model_dir: Annotated[str | None, typer.Option(help="Model folder.")] = None,
    input_format: InputFormatOpt = None,
    partition_keys: PartitionKeysOpt = None,
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
    wait: WaitOpt = False,
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
        retry = {k: v for k, v in (("max_retries", max_retries), ("timeout", timeout))
                 if v is not None}
        job_spec = spec_with_overrides(
            spec, retry=retry, environment_variables=key_values(
                env, "--env {pair!r}: expected KEY=VALUE"),
            **_paths(scoring_script=scoring_script, code=code, model_dir=model_dir),
            input_format=input_format, mini_batch_size=batch_size(mini_batch_size),
            output_action=output_action, output_file_name=output_file_name,
            error_threshold=error_threshold, logging_level=logging_level,
            max_concurrency_per_instance=max_concurrency_per_instance,
            instance_count=instance_count, partition_keys=[
                k.strip() for k in partition_keys.split(",")] if partition_keys else None,
            env_manager=env_manager)
        if not input:
            raise SpecError("no input given: pass --input (a file, folder, glob or URL)")
        if not output:
            raise SpecError("no output given: pass --output (a folder path or URL)")
        outcome = backend(workspace, server, token).run_job(
            job_spec, input, output, overwrite=overwrite, wait=wait, executor=executor,
            ray_address=ray_address, report=Report(progress and err_console.is_terminal))
        if outcome:
            raise typer.Exit(outcome)



def _paths(**paths: str | None) -> dict[str, str | None]:
    """--scoring-script, --code and --model-dir as absolute paths of this machine (URLs and
    registered models as they are; a script relative to --code stays relative to it)."""
    found = dict(paths)
    for key, value in paths.items():
        if key == "scoring_script" and paths["code"] and not Path(value or "").is_absolute():
            continue  # relative to --code, as code_configuration.scoring_script is
        if value and "://" not in value and not value.startswith(("azureml:", "models:/")):
            found[key] = str(Path(value).resolve())
    return found


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
        code = backend(workspace).resume_job(
            job_id, executor=executor, ray_address=ray_address,
            report=Report(progress and err_console.is_terminal))
        if code:
            raise typer.Exit(code)


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
        jobs = backend(workspace, server, token).list_jobs(limit=limit, state=state)
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
        found = backend(workspace, server, token)
        data = found.get_job(job_id)
        mbs = found.minibatches(data["id"])
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
        view = backend(workspace, server, token).job_logs(job_id)
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
        job = backend(workspace, server, token).cancel_job(job_id)
        console.print(f"job {job['id']} {job['state']}")


def _print_file(text: str) -> None:
    """Print a log file's text as it is, without adding a blank line after it."""
    console.print(text, end="" if text.endswith("\n") or not text else "\n")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


