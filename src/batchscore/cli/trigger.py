"""``batchscore trigger``: storage triggers and schedules that start pipeline runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import SpecError
from ._common import (
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    backend,
    console,
    errors,
    key_values,
)

__all__ = ["app"]

app = typer.Typer(
    help="Start pipelines when blobs arrive in a store, or on a schedule.\n\nExample:\n\n"
    "    batchscore trigger add videos --prefix incoming/ --pattern '*.mp4' "
    "--pipeline video-style --param style=7 --output outgoing/",
    no_args_is_help=True,
)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the trigger.")],
    pipeline: Annotated[str, typer.Option(help="The pipeline to start.")] = "video-style",
    store: Annotated[str, typer.Option(help="The store to watch (only 'data').")] = "data",
    prefix: Annotated[str | None, typer.Option(help="Folder of the store to watch.")] = None,
    pattern: Annotated[str, typer.Option(help="Blob names to match (glob).")] = "*",
    output: Annotated[str | None, typer.Option(help="Output folder in the data store.")
                      ] = None,
    param: Annotated[list[str] | None, typer.Option(
        help="Pipeline parameter KEY=VALUE (repeatable).")] = None,
    cron: Annotated[str | None, typer.Option(help="A schedule instead: cron expression.")
                    ] = None,
    marker: Annotated[str | None, typer.Option(
        help="Wait for a marker file in the blob's folder (such as 'trigger*').")] = None,
    settle: Annotated[float, typer.Option(
        help="Seconds a blob must stay unchanged before it counts as uploaded.")] = 2.0,
    process_existing: Annotated[bool, typer.Option(
        help="Also start runs for blobs already there.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Add a storage trigger (each new blob starts one run) or a schedule.

    Example:

        batchscore trigger add videos --prefix in/ --pattern '*.mp4' --param style=7 --output out/
        batchscore trigger add nightly --cron '0 2 * * *' --param input=in/a.mp4 --param output=out/
    """
    with errors():
        if store != "data":
            raise SpecError(f"triggers watch the data store; --store {store!r} is not allowed")
        body = dict(name=name, pipeline=pipeline, params=key_values(param), prefix=prefix,
                    pattern=pattern, output=output, marker=marker, settle_seconds=settle,
                    cron=cron, process_existing=process_existing)
        created = backend(workspace, server, token).add_trigger(**body)
        console.print(f"trigger {created['name']} ({created['kind']}) -> {created['pipeline']}")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """List triggers.

    Example:

        batchscore trigger list --json
    """
    with errors():
        found = backend(workspace, server, token).list_triggers()
        if as_json:
            console.print(json.dumps(found, indent=2, default=str))
            return
        for t in found:
            what = t["cron"] if t["kind"] == "schedule" else f"{t['prefix']}{t['pattern']}"
            console.print(f"{t['name']}\t{t['kind']}\t{what}\t{t['pipeline']}")


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The trigger's name.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Remove a trigger; the runs it started are kept.

    Example:

        batchscore trigger remove videos
    """
    with errors():
        backend(workspace, server, token).remove_trigger(name)
        console.print(f"removed trigger {name}")
