"""``batchscore model``: the model registry (MLflow's) and online scoring."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._common import WorkspaceOpt, console, errors, open_ws

__all__ = ["app"]

app = typer.Typer(
    help="Registered models: versions, aliases (staging, production), promotion, serving."
    "\n\nExample:\n\n    batchscore model list\n    batchscore model promote diabetes",
    no_args_is_help=True,
)


def _line(v) -> str:  # type: ignore[no-untyped-def]
    aliases = f" [{', '.join(v.aliases)}]" if v.aliases else ""
    metrics = " ".join(f"{k}={val:g}" for k, val in sorted(v.metrics.items()))
    decision = v.tags.get("batchscore.decision", "")
    return f"{v.name}/{v.version}{aliases}  {metrics}  {decision}".rstrip()


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List registered model versions with their aliases and metrics.

    Example:

        batchscore model list
        batchscore model list diabetes --json
    """
    from ..mlops import list_models

    with errors():
        versions = list_models(open_ws(workspace), name)
        if as_json:
            console.print(json.dumps([v.to_dict() for v in versions], indent=2))
            return
        if not versions:
            console.print("no registered models")
        for v in versions:
            console.print(_line(v))


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME/VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show one model version: aliases, metrics, tags and its training run.

    Example:

        batchscore model show diabetes@production
    """
    from ..mlops import get_version

    with errors():
        v = get_version(open_ws(workspace), ref)
        if as_json:
            console.print(json.dumps(v.to_dict(), indent=2))
            return
        console.print(_line(v))
        console.print(f"uri: {v.uri}")
        console.print(f"training run: {v.run_id}")
        for key, value in sorted(v.tags.items()):
            console.print(f"{key}: {value}")


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    version: Annotated[int | None, typer.Option(
        help="The version to promote (default: the one holding 'staging').")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Point the production alias at a version (default: the staging version).

    Example:

        batchscore model promote diabetes
        batchscore model promote diabetes --version 3
    """
    from ..mlops import promote as promote_

    with errors():
        v = promote_(open_ws(workspace), name, version)
        console.print(f"{v.name}/{v.version} is production")


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Restore the version that was in production before the current one.

    Example:

        batchscore model rollback diabetes
    """
    from ..mlops import rollback as rollback_

    with errors():
        v = rollback_(open_ws(workspace), name)
        console.print(f"{v.name}/{v.version} is production again")


@app.command("serve")
def serve(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    no_log: Annotated[bool, typer.Option(
        "--no-log", help="Do not log requests to the data store.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Serve a model over HTTP (MLflow scoring protocol and Open Inference Protocol v2).

    Requests and predictions are logged to the data store under inference-logs/.

    Example:

        batchscore model serve diabetes@production --port 8080
    """
    import uvicorn

    from ..serving import InferenceLogger, create_app, load_served_model

    with errors():
        ws = open_ws(workspace)
        served = load_served_model(ws, ref)
        logger = None if no_log else InferenceLogger(ws.data)
        console.print(f"serving {served.name}/{served.version} on http://{host}:{port}")
        uvicorn.run(create_app(served, logger=logger), host=host, port=port, log_level="info")
