"""``batchscore endpoint``: batch endpoints (create, list, show, delete, invoke)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import endpoints as api
from ..errors import SpecError
from ..jobs.api import get_job
from ..jobs.runner import ProgressSnapshot
from ..jobs.spec import load_spec, spec_from_mapping
from ..pipelines import claim_run, execute_run
from ._common import ServerOpt, TokenOpt, WorkspaceOpt, call_server, console, errors, open_ws
from .job import _Bar, _finish

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
        size: int | str | None = None
        if mini_batch_size is not None:
            size = int(mini_batch_size) if mini_batch_size.isdigit() else mini_batch_size
        retry = {k: v for k, v in (("max_retries", max_retries), ("timeout", timeout))
                 if v is not None}
        settings: dict[str, Any] = {"mini_batch_size": size, "error_threshold": error_threshold,
                                    "max_concurrency_per_instance": workers}
        if retry:
            settings["retry_settings"] = retry
        chosen = [flag for flag, v in (("--model", model), ("--script", script),
                                       ("--spec", spec)) if v is not None]
        if file is not None or (not chosen and name is not None and not server):
            # Azure's form: the endpoint alone; deployments come with deployment create
            if chosen:
                raise SpecError(f"--file creates an endpoint without deployments; give "
                                f"{', '.join(chosen)} to batchscore deployment create")
            from ..endpoints import create_bare_endpoint, load_endpoint_yaml

            declared = load_endpoint_yaml(file) if file is not None else {}
            name = name or declared.get("name")
            if not name:
                raise SpecError("no endpoint name given: pass NAME or name: in --file")
            made = create_bare_endpoint(open_ws(workspace), str(name),
                                        description=description or declared.get("description"))
            console.print(f"endpoint {made.name} created (no deployments yet: batchscore "
                          f"deployment create -f deployment.yml --endpoint-name {made.name})")
            return
        if name is None:
            raise SpecError("no endpoint name given")
        if len(chosen) != 1:
            raise SpecError("give exactly one of --model, --script or --spec"
                            + (f" (got {', '.join(chosen)})" if chosen else ""))
        if server:
            if model is None:
                raise SpecError("--server creates endpoints for --model only (scripts live on "
                                "this machine)")
            body = {"name": name, "model": model, "group_by": _columns(group_by),
                    "keys": _columns(keys), "prediction": prediction,
                    "features": _columns(features) if features else None,
                    "description": description,
                    "settings": {k: v for k, v in settings.items() if v is not None}}
            created = call_server(server, token, "POST", "/endpoints", body)
            console.print(f"endpoint {created['name']} created ({created['kind']})")
            return
        ws = open_ws(workspace)
        if model is not None:
            job_spec = api.tabular_endpoint_spec(
                name, model, group_by=_columns(group_by), keys=_columns(keys),
                features=_columns(features) if features else None, prediction=prediction,
                settings=settings)
        else:
            if group_by or keys or features or prediction:
                raise SpecError("--group-by, --keys, --features and --prediction go with "
                                "--model")
            overrides = {**settings, "input_format": input_format,
                         "model_dir": str(model_dir.resolve()) if model_dir else None}
            if spec is not None:
                job_spec = load_spec(spec, name=name, **overrides)
            else:
                assert script is not None
                raw = {"name": name, "scoring_script": str(script.resolve()),
                       "code": str(code.resolve()) if code else None}
                job_spec = spec_from_mapping(raw, source=f"endpoint {name!r}", **overrides)
        endpoint = api.create_endpoint(ws, name, job_spec, model=model,
                                       description=description)
        console.print(f"endpoint {endpoint.name} created ({endpoint.kind}"
                      + (f", model {endpoint.model}" if endpoint.model else "") + ")")


@app.command("list")
def list_(workspace: WorkspaceOpt = None, server: ServerOpt = None, token: TokenOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
          ) -> None:
    """List the batch endpoints.

    Example:

        batchscore endpoint list
    """
    with errors():
        if server:
            rows = call_server(server, token, "GET", "/endpoints")
        else:
            rows = [e.to_dict() for e in api.list_endpoints(open_ws(workspace))]
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
        if server:
            data = call_server(server, token, "GET", f"/endpoints/{name}")
        else:
            ws = open_ws(workspace)
            from ..endpoints import list_deployments

            data = {**api.get_endpoint(ws, name).to_dict(),
                    "deployments": [d.to_dict() for d in list_deployments(ws, name)],
                    "invocations": api.invocations(ws, name)}
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
    from ..endpoints import set_default

    with errors():
        set_default(open_ws(workspace), name, default_deployment)
        console.print(f"endpoint {name}: default deployment {default_deployment}")


@app.command()
def delete(name: Name, workspace: WorkspaceOpt = None, server: ServerOpt = None,
           token: TokenOpt = None) -> None:
    """Delete an endpoint (its jobs and their outputs stay).

    Example:

        batchscore endpoint delete sensor-anomaly
    """
    with errors():
        if server:
            call_server(server, token, "DELETE", f"/endpoints/{name}")
        else:
            api.delete_endpoint(open_ws(workspace), name)
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
        if server:
            if deployment_name:
                raise SpecError("--deployment-name is not available with --server yet")
            body = {"inputs": input, "query": query, "output": output, "table": table,
                    "overwrite": overwrite}
            inv = call_server(server, token, "POST", f"/endpoints/{name}/invoke", body)
            console.print(f"job {inv['job_id']} queued (run {inv['run_id']})")
            if wait:
                _follow_remote(server, token, inv["job_id"], progress)
            return
        ws = open_ws(workspace)
        from ..endpoints import invoke_deployment

        inv = invoke_deployment(ws, name, input, output, deployment=deployment_name,
                                query=query, table=table, overwrite=overwrite,
                                start=not wait)
        if not wait:
            console.print(f"job {inv.job_id} queued (run {inv.run_id}); follow it with: "
                          f"batchscore job show {inv.job_id}")
            return
        with _Bar(progress) as bar:
            if claim_run(ws, inv.run_id):
                execute_run(ws, inv.run_id, progress=bar)
            else:  # already taken by a service or a runner: follow the job
                _follow_local(ws, inv.job_id, bar)
        _finish(ws, get_job(ws, inv.job_id))


def _follow_local(ws: Any, job_id: str, bar: _Bar) -> None:
    from ..jobs.api import list_minibatches

    while True:
        job = get_job(ws, job_id)
        states = [mb.state for mb in list_minibatches(ws, job_id)]
        bar(_snapshot(job.to_dict(), states))
        if job.finished:
            return
        time.sleep(0.5)


def _snapshot(job: dict[str, Any], states: list[str]) -> ProgressSnapshot:
    return ProgressSnapshot(job["id"], job["state"], job["minibatches_total"],
                            states.count("done"), states.count("failed"),
                            job["items_total"], job["items_succeeded"], job["items_failed"])


def _follow_remote(server: str, token: str | None, job_id: str, progress: bool) -> None:
    with _Bar(progress) as bar:
        while True:
            job = call_server(server, token, "GET", f"/jobs/{job_id}")
            mbs = call_server(server, token, "GET", f"/jobs/{job_id}/minibatches")
            bar(_snapshot(job, [mb["state"] for mb in mbs]))
            if job["state"] in ("succeeded", "failed", "canceled"):
                break
            time.sleep(0.5)
    console.print(f"job {job['id']} {job['state']}: {job['items_succeeded']}/"
                  f"{job['items_total']} items" + (f"; {job['reason']}" if job.get("reason")
                                                   else ""))
    if job["state"] != "succeeded":
        raise typer.Exit(1)
