"""``batchscore endpoint``: batch endpoints (create, list, show, delete, invoke)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..backend import EndpointRequest
from ._common import (
    EnvManagerOpt,
    Report,
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    backend,
    batch_size,
    console,
    errors,
)

__all__ = ["app"]

app = typer.Typer(
    help="Batch endpoints: a name bound to a model and job settings; invoking one starts a "
    "job over files or a SQL query.\n\n"
    "Example:\n\n"
    "    batchscore endpoint create churn --model models:/churn@production\n"
    "    batchscore endpoint invoke churn --input 'data/*.parquet' --output scored/ --wait",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="Endpoint name.")]


def _columns(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


@app.command()
def create(
    name: Annotated[str | None, typer.Argument(
        help="Endpoint name (default: the name: of --file).", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="An endpoint YAML (Azure's batchEndpoint schema): an endpoint "
        "without deployments yet (batchscore deployment create adds them).",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        help="models:/NAME@ALIAS, models:/NAME/VERSION or a model folder; with --group-by it "
        "may hold {Column} placeholders (models:/m-{Device}@production) or be a folder of "
        "per-group models (DIR/Device=1/...).", show_default=False)] = None,
    group_by: Annotated[str | None, typer.Option(
        help="Comma-separated columns: each group is scored by its own model.",
        show_default=False)] = None,
    keys: Annotated[str | None, typer.Option(
        help="Comma-separated input columns written beside the predictions.",
        show_default=False)] = None,
    features: Annotated[str | None, typer.Option(
        help="Comma-separated model input columns (default: the model's signature).",
        show_default=False)] = None,
    prediction: Annotated[str | None, typer.Option(
        help="Name of the prediction column (default prediction).", show_default=False)] = None,
    script: Annotated[Path | None, typer.Option(
        help="An entry script (init/run) instead of --model.", show_default=False)] = None,
    model_dir: Annotated[Path | None, typer.Option(
        help="Model folder of --script (AZUREML_MODEL_DIR).", show_default=False)] = None,
    code: Annotated[Path | None, typer.Option(
        help="Folder of --script's code.", show_default=False)] = None,
    input_format: Annotated[str | None, typer.Option(
        help="For --script: files, csv or parquet.", show_default=False)] = None,
    spec: Annotated[Path | None, typer.Option(
        help="A deployment YAML (Azure ML form) with the settings.", show_default=False)] = None,
    mini_batch_size: Annotated[str | None, typer.Option(
        help="Rows (or files) per mini-batch, or a size such as 10mb.", show_default=False)
    ] = None,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes (max_concurrency_per_instance).", show_default=False)] = None,
    error_threshold: Annotated[int | None, typer.Option(
        help="Failed items allowed (-1: any).", show_default=False)] = None,
    max_retries: Annotated[int | None, typer.Option(show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds per mini-batch.", show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    env_manager: EnvManagerOpt = None,
    workspace: WorkspaceOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a batch endpoint for a registered model, a model folder or an entry script.

    Example:

        batchscore endpoint create sensor-anomaly \\
            --model 'models:/sensor-anomaly-{Device}-{Sensor}@production' \\
            --group-by Device,Sensor --keys TS,Device,Sensor,Value --features Value
        batchscore endpoint create diabetes --script score.py --model-dir model/ \\
            --input-format csv
    """
    with errors():
        retry = {k: v for k, v in (("max_retries", max_retries), ("timeout", timeout))
                 if v is not None}
        settings = {"mini_batch_size": batch_size(mini_batch_size),
                    "error_threshold": error_threshold,
                    "max_concurrency_per_instance": workers,
                    **({"retry_settings": retry} if retry else {}),
                    **({"env_manager": env_manager} if env_manager else {})}
        request = EndpointRequest(
            name, file=file, model=model, script=script, spec=spec,
            group_by=_columns(group_by), keys=_columns(keys),
            features=_columns(features) if features else None, prediction=prediction,
            model_dir=model_dir, code=code, input_format=input_format,
            description=description, settings=settings)
        backend(workspace, server, token).create_endpoint(request, Report())



@app.command("list")
def list_(workspace: WorkspaceOpt = None, server: ServerOpt = None, token: TokenOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
          ) -> None:
    """List the batch endpoints.

    Example:

        batchscore endpoint list
    """
    with errors():
        rows = backend(workspace, server, token).list_endpoints()
        if as_json:
            console.print(json.dumps(rows, indent=2))
            return
        table = Table("name", "kind", "model", "description")
        for row in rows:
            table.add_row(row["name"], row["kind"], row["model"] or "", row["description"] or "")
        console.print(table)


@app.command()
def show(name: Name, workspace: WorkspaceOpt = None, server: ServerOpt = None,
         token: TokenOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show an endpoint's settings and its latest invocations.

    Example:

        batchscore endpoint show sensor-anomaly
    """
    with errors():
        data = backend(workspace, server, token).get_endpoint(name)
        if as_json:
            console.print(json.dumps(data, indent=2))
            return
        console.print(f"endpoint {data['name']} ({data['kind']})")
        if data.get("model"):
            console.print(f"model: {data['model']}")
        if data.get("description"):
            console.print(f"description: {data['description']}")
        for dep in data.get("deployments") or []:
            console.print(f"deployment: {dep['name']}" + (" (default)" if dep["is_default"]
                                                          else ""))
        spec = data["spec"]
        for key in ("options", "mini_batch_size", "error_threshold",
                    "max_concurrency_per_instance", "retry_settings"):
            if spec.get(key) not in (None, {}, []):
                console.print(f"{key}: {json.dumps(spec[key])}")
        table = Table("run", "job", "state", "items", "output", "created")
        for inv in data["invocations"]:
            job = inv.get("job") or {}
            items = (f"{job.get('items_succeeded', 0)}/{job.get('items_total', 0)}"
                     if job else "")
            table.add_row(inv["id"], inv["job_id"] or "", job.get("state") or inv["state"],
                          items, inv["output_url"] or "",
                          time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(inv["created_at"])))
        console.print(table)


@app.command()
def update(name: Name,
           default_deployment: Annotated[str, typer.Option(
               "--default-deployment", help="The deployment invoking the endpoint runs.")],
           workspace: WorkspaceOpt = None) -> None:
    """Change an endpoint's default deployment (the one invoking it runs).

    Example:

        batchscore endpoint update heart --default-deployment classifier-xgboost
    """
    with errors():
        backend(workspace).set_default_deployment(name, default_deployment)
        console.print(f"endpoint {name}: default deployment {default_deployment}")


@app.command()
def delete(name: Name, workspace: WorkspaceOpt = None, server: ServerOpt = None,
           token: TokenOpt = None) -> None:
    """Delete an endpoint (its jobs and their outputs stay).

    Example:

        batchscore endpoint delete sensor-anomaly
    """
    with errors():
        backend(workspace, server, token).delete_endpoint(name)
        console.print(f"endpoint {name} deleted")


@app.command()
def invoke(
    name: Name,
    input: Annotated[list[str], typer.Option(
        "--input", "-i", help="Input files, globs or URLs (CSV/Parquet), or a database URL "
        "with --query (repeatable).")] = [],  # noqa: B006
    query: Annotated[str | None, typer.Option(
        help="SQL query run against the --input database URL.", show_default=False)] = None,
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Output folder, .parquet/.csv file, or a database URL with "
        "--table.")] = "",
    table: Annotated[str | None, typer.Option(
        help="SQL table the predictions are appended to.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished output.")] = False,
    deployment_name: Annotated[str | None, typer.Option(
        "--deployment-name", "-d", help="Run this deployment instead of the default.",
        show_default=False)] = None,
    wait: Annotated[bool, typer.Option(
        help="Follow the job to its end with a progress bar.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar with --wait.")] = True,
    env_manager: EnvManagerOpt = None,
    workspace: WorkspaceOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Start a job of the endpoint and print its id at once (--wait follows it).

    Example:

        batchscore endpoint invoke sensor-anomaly \\
            --input ../shared/data/sensors/sensor_data.csv --output scored/ --wait
        batchscore endpoint invoke churn --input postgresql://db/crm \\
            --query 'SELECT * FROM customers' --output postgresql://db/crm --table churn_scores
    """
    with errors():
        code = backend(workspace, server, token).invoke_endpoint(
            name, input, output, query=query, table=table, overwrite=overwrite,
            deployment=deployment_name, wait=wait, report=Report(progress),
            env_manager=env_manager)
        if code:
            raise typer.Exit(code)
