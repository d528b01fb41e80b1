"""``batchscore pipeline``: published pipelines and their runs, here or through a service;
and a project's train-evaluate-register pipeline run here."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..errors import InputError, UsageError
from ._common import (
    Report,
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    backend,
    console,
    errors,
    key_values,
    open_ws,
)

__all__ = ["app"]

app = typer.Typer(
    help="Published pipelines and their runs.\n\nExample:\n\n"
    "    batchscore pipeline start video-style -p input=incoming/a.mp4 -p output=outgoing/a.mp4\n"
    "    batchscore pipeline run train-evaluate-register --project examples/diabetes",
    no_args_is_help=True,
)


def _print_run(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(run, default=str))
        return
    line = f"run {run['id']} {run['pipeline']} {run['state']}"
    if run.get("job_id"):
        line += f" job {run['job_id']}"
    if run.get("reason"):
        line += f": {run['reason']}"
    console.print(line, highlight=False)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """List the published pipelines, their parameters and who may start them.

    Example:

        batchscore pipeline list
        batchscore pipeline list --server http://scoring.internal:8000 --token $TOKEN
    """
    with errors():
        found = backend(None, server, token).list_pipelines()
        if as_json:
            console.print_json(json.dumps(found))
            return
        for p in found:
            params = ", ".join((p.get("parameters") or {}).get("properties", {}))
            console.print(f"{p['name']}\t{p.get('role', 'operator')}\t{p['summary']}\n"
                          f"    params: {params}", highlight=False)


@app.command("start")
def start(
    name: Annotated[str, typer.Argument(help="A published pipeline (see pipeline list).")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Parameter KEY=VALUE (repeatable).")] = None,
    wait: Annotated[bool, typer.Option(
        help="Follow the run to its end; the exit code is its outcome.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Start a run of a published pipeline, here or through a service.

    With --server the run is queued in the service (POST /api/v1/pipelines/NAME/runs) and
    runs there; --wait follows it. Without, it runs here to its end.

    Example:

        batchscore pipeline start video-style -p input=incoming/a.mp4 -p style=7 \\
            -p output=outgoing/a.mp4 --server http://scoring.internal:8000 --wait
        batchscore pipeline start batch-endpoint -p endpoint=churn -p input=incoming/x.csv \\
            -p output=scored/x.csv
    """
    with errors():
        params = key_values(param)
        run = backend(workspace, server, token).start_run(name, params, wait=wait,
                                                          report=Report())
        _print_run(run, as_json)
        if run["state"] in ("failed", "canceled"):
            raise typer.Exit(1)


@app.command("runs")
def runs(
    state: Annotated[str | None, typer.Option(
        help="Only runs in this state (queued, running, succeeded, failed, canceled).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """List pipeline runs, newest first.

    Example:

        batchscore pipeline runs --state failed --server http://scoring.internal:8000
    """
    with errors():
        found = backend(workspace, server, token).list_runs(state=state, limit=limit)
        if as_json:
            console.print_json(json.dumps(found, default=str))
            return
        for run in found:
            _print_run(run, False)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show a pipeline run as JSON (its parameters, state, job and reason).

    Example:

        batchscore pipeline show 4f0c9a... --server http://scoring.internal:8000
    """
    with errors():
        run = backend(workspace, server, token).get_run(run_id)
        _print_run(run, True)


@app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Cancel a queued or running pipeline run (its job stops at the next mini-batch).

    Example:

        batchscore pipeline cancel 4f0c9a... --server http://scoring.internal:8000
    """
    with errors():
        run = backend(workspace, server, token).cancel_run(run_id)
        _print_run(run, False)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The pipeline: train-evaluate-register.")],
    project: Annotated[str, typer.Option(help="The project folder (with params.yaml).")],
    param: Annotated[list[str] | None, typer.Option(
        help="Override a params.yaml value, SECTION.KEY=VALUE (repeatable).")] = None,
    data: Annotated[str | None, typer.Option(
        help="A CSV file to train on instead of the project's data.load().")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run a pipeline: data tests, train, evaluate against production (else staging), register.

    A version trained on the same data by the same code already: nothing is trained or
    registered ("not promoted: same data and code as version N", exit 0).

    Example:

        batchscore pipeline run train-evaluate-register --project examples/diabetes
        batchscore pipeline run train-evaluate-register --project my-project --param train.alpha=0.1
    """
    from ..mlops import PIPELINE_NAME, train_evaluate_register

    with errors():
        if name != PIPELINE_NAME:
            raise UsageError(f"pipeline run runs {PIPELINE_NAME!r} on this machine; got "
                             f"{name!r} (published pipelines run through triggers and the "
                             "service)")
        overrides = key_values(param, "--param takes SECTION.KEY=VALUE, got {pair!r}")
        frame = None
        if data is not None:
            import pandas as pd

            try:
                frame = pd.read_csv(data)
            except (OSError, ValueError) as exc:
                raise InputError(f"--data {data!r} cannot be read as CSV: {exc}") from None
        outcome = train_evaluate_register(open_ws(workspace), project, data=frame,
                                          overrides=overrides, log=console.print)
        if not outcome.registered:
            console.print(f"pipeline run {outcome.pipeline_run} succeeded: {outcome.reason} "
                          f"({outcome.model_name}), nothing registered", highlight=False)
            return
        console.print(f"pipeline run {outcome.pipeline_run} succeeded: "
                      f"{outcome.model_name}/{outcome.version} "
                      + ("promoted to staging" if outcome.promoted else "not promoted"))
