"""``batchscore deployment``: an endpoint's named deployments (``az ml batch-deployment``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import SpecError
from ._common import ServerOpt, TokenOpt, WorkspaceOpt, backend, console, errors

__all__ = ["app"]

app = typer.Typer(
    help="Batch deployments: the named scorers of an endpoint; invoking the endpoint runs "
    "its default one.\n\nExample:\n\n"
    "    batchscore deployment create -f deployment.yml --endpoint-name heart --set-default\n"
    "    batchscore deployment list --endpoint-name heart",
    no_args_is_help=True,
)

EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint-name", "-e", help="The endpoint (default: the YAML's endpoint_name).",
    show_default=False)]
NameArg = Annotated[str, typer.Argument(help="Deployment name.")]


@app.command()
def create(
    file: Annotated[Path, typer.Option(
        "--file", "-f", help="A deployment YAML (Azure's modelBatchDeployment schema).",
        show_default=False)],
    endpoint_name: EndpointOpt = None,
    name: Annotated[str | None, typer.Option(
        help="Deployment name (default: the YAML's name).", show_default=False)] = None,
    set_default: Annotated[bool, typer.Option(
        "--set-default", help="Make it the endpoint's default deployment.")] = False,
    model_dir: Annotated[str | None, typer.Option(
        help="Model folder, instead of the YAML's model.", show_default=False)] = None,
    env_manager: Annotated[str | None, typer.Option(
        help="local or virtualenv: its jobs run the script in a cached virtualenv of the "
        "YAML's environment (default: the workspace's executor.env_manager, else local).",
        show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Add a deployment to an endpoint (the first one becomes its default).

    Example:

        batchscore deployment create -f deployment.yml --endpoint-name heart --set-default
    """
    import yaml

    from ..jobs.spec import load_spec

    with errors():
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8")) if file.is_file() else {}
        except (yaml.YAMLError, UnicodeDecodeError):
            raw = {}  # load_spec says what is wrong with it
        raw = raw if isinstance(raw, dict) else {}
        endpoint = endpoint_name or raw.get("endpoint_name")
        deployment = name or raw.get("name")
        if not endpoint:
            raise SpecError("no endpoint given: pass --endpoint-name (or endpoint_name: in "
                            "the YAML)")
        if not deployment:
            raise SpecError("no deployment name given: pass --name (or name: in the YAML)")
        overrides = {"model_dir": str(Path(model_dir).resolve())
                     if model_dir and "://" not in model_dir else model_dir,
                     "env_manager": env_manager}
        spec = load_spec(file, **overrides)
        made = backend(workspace, server, token).create_deployment(
            str(endpoint), str(deployment), spec, set_default=set_default,
            description=raw.get("description"))
        console.print(f"deployment {made['name']} created in endpoint {made['endpoint']}"
                      + (" (default)" if made["is_default"] else ""))


@app.command("list")
def list_(endpoint_name: Annotated[str, typer.Option(
              "--endpoint-name", "-e", help="The endpoint.")],
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
          workspace: WorkspaceOpt = None, server: ServerOpt = None,
          token: TokenOpt = None) -> None:
    """List an endpoint's deployments.

    Example:

        batchscore deployment list --endpoint-name heart
    """
    with errors():
        rows = backend(workspace, server, token).list_deployments(endpoint_name)
        if as_json:
            console.print(json.dumps(rows, indent=2))
            return
        table = Table("name", "default", "kind", "model", "description")
        for row in rows:
            table.add_row(row["name"], "yes" if row["is_default"] else "", row["kind"],
                          row["model"] or "", row["description"] or "")
        console.print(table)


@app.command()
def show(name: NameArg, endpoint_name: Annotated[str, typer.Option(
             "--endpoint-name", "-e", help="The endpoint.")],
         workspace: WorkspaceOpt = None, server: ServerOpt = None,
         token: TokenOpt = None) -> None:
    """Show a deployment as JSON.

    Example:

        batchscore deployment show classifier-mlflow --endpoint-name heart
    """
    with errors():
        found = backend(workspace, server, token).get_deployment(endpoint_name, name)
        console.print(json.dumps(found, indent=2))


@app.command()
def delete(name: NameArg, endpoint_name: Annotated[str, typer.Option(
               "--endpoint-name", "-e", help="The endpoint.")],
           workspace: WorkspaceOpt = None, server: ServerOpt = None,
          token: TokenOpt = None) -> None:
    """Delete a deployment (not the default while there are others); its jobs stay.

    Example:

        batchscore deployment delete classifier-old --endpoint-name heart
    """
    with errors():
        backend(workspace, server, token).delete_deployment(endpoint_name, name)
        console.print(f"deployment {name} deleted from endpoint {endpoint_name}")


@app.command("list-jobs")
def list_jobs(name: NameArg, endpoint_name: Annotated[str, typer.Option(
                  "--endpoint-name", "-e", help="The endpoint.")],
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
              workspace: WorkspaceOpt = None, server: ServerOpt = None,
          token: TokenOpt = None) -> None:
    """List the jobs a deployment ran, newest first (az ml batch-deployment list-jobs).

    Example:

        batchscore deployment list-jobs classifier-mlflow --endpoint-name heart
    """
    with errors():
        runs = backend(workspace, server, token).deployment_jobs(endpoint_name, name)
        if as_json:
            console.print(json.dumps(runs, indent=2, default=str))
            return
        table = Table("job", "run", "state", "items", "output", "created")
        for inv in runs:
            job = inv.get("job") or {}
            items = (f"{job.get('items_succeeded', 0)}/{job.get('items_total', 0)}"
                     if job else "")
            table.add_row(inv["job_id"] or "", inv["id"], job.get("state") or inv["state"],
                          items, inv["output_url"] or "",
                          time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(inv["created_at"])))
        console.print(table)
