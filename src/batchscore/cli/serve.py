"""``batchscore serve`` and ``batchscore token``: the control plane and its API tokens."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ._common import WorkspaceOpt, console, errors, open_ws

__all__ = ["register", "token_app"]

token_app = typer.Typer(
    help="Manage API tokens of the service (admin, operator, viewer).\n\nExample:\n\n"
    "    batchscore token create ci --role operator",
    no_args_is_help=True,
)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    run_slots: Annotated[int, typer.Option(help="Pipeline runs executed at once.")] = 2,
    scan_interval: Annotated[float, typer.Option(help="Seconds between trigger scans.")] = 5.0,
    auth: Annotated[str, typer.Option(
        help="auto: loopback needs no token, others do; always; off.")] = "auto",
    workspace: WorkspaceOpt = None,
) -> None:
    """Run the control plane: REST API, dashboard, metrics, triggers and run slots.

    Runs left unfinished by an earlier service resume when it starts. The API is under
    /api/v1 (OpenAPI at /api/v1/openapi.json), the dashboard at /dashboard/.

    Example:

        batchscore serve --port 8000
        batchscore serve --host 0.0.0.0 --auth always --run-slots 4
    """
    import logging

    import uvicorn

    from ..service import ServiceConfig, create_app

    with errors():
        ws = open_ws(workspace)
        ws.engine  # noqa: B018 - opens (and upgrades) the database before serving
        app = create_app(ws, ServiceConfig(auth=auth, run_slots=run_slots,
                                           scan_interval=scan_interval))
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        console.print(f"batchscore: serving {ws.settings.root} on http://{host}:{port}/ "
                      f"(dashboard /dashboard/, API /api/v1)")
        uvicorn.run(app, host=host, port=port, log_level="info")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who the token is for.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    workspace: WorkspaceOpt = None,
) -> None:
    """Create an API token and print it (it is stored hashed, and shown only now).

    Example:

        batchscore token create dashboard-team --role viewer
    """
    from ..service.auth import create_token

    with errors():
        ws = open_ws(workspace)
        _, token = create_token(ws.engine, name, role)
        console.print(token)


@token_app.command("list")
def token_list(workspace: WorkspaceOpt = None) -> None:
    """List API tokens: name, role, last use (never the tokens themselves).

    Example:

        batchscore token list
    """
    from ..service.auth import list_tokens

    with errors():
        ws = open_ws(workspace)
        for t in list_tokens(ws.engine):
            used = t["last_used_at"]
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(used)) if used else "never"
            console.print(f"{t['name']}  {t['role']}  last used {when}")


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Revoke an API token at once.

    Example:

        batchscore token revoke ci
    """
    from ..service.auth import revoke_token

    with errors():
        revoke_token(open_ws(workspace).engine, name)
        console.print(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(token_app, name="token")
