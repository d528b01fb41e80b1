"""``batchscore serve`` and ``batchscore token``: the control plane and its API tokens."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..errors import UsageError
from ..tlsconfig import is_loopback
from ._common import WorkspaceOpt, console, err_console, errors, open_ws
from .tls import SslCertOpt, SslKeyOpt

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
        help="auto: every caller needs a token; the service writes an admin token to the "
        "workspace's service/admin.token (0600) for the CLI on this machine. always: the "
        "same without that file. off: no tokens at all (only on a loopback address unless "
        "--insecure-no-auth-on-network).")] = "auto",
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="A Host name this service answers for besides localhost, "
        "127.0.0.1 and [::1] (repeat for more); requests without a token that name another "
        "host are refused (421).")] = None,
    link_ttl: Annotated[float, typer.Option(
        help="Seconds a download link made by the service lives.")] = 3600.0,
    link_max_ttl: Annotated[float, typer.Option(
        help="Longest life in seconds of any download link the service honours.")] = 7 * 86400.0,
    insecure_no_auth_on_network: Annotated[bool, typer.Option(
        "--insecure-no-auth-on-network",
        help="Allow --auth off on an address other machines reach: anyone who can connect "
        "is then an admin and can run code on this machine.")] = False,
    ssl_certfile: SslCertOpt = None,
    ssl_keyfile: SslKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run the control plane: REST API, dashboard, metrics, triggers and run slots.

    Runs left unfinished by an earlier service resume when it starts. The API is under
    /api/v1 (OpenAPI at /api/v1/openapi.json), the dashboard at /dashboard/.

    Example:

        batchscore serve --port 8000
        batchscore serve --host 0.0.0.0 --allowed-host scoring.internal --run-slots 4
        batchscore serve --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem
    """
    import logging

    import uvicorn

    from ..service import ServiceConfig, create_app
    from ..tlsconfig import clear_text_warning, server_tls

    with errors():
        tls = server_tls(ssl_certfile, ssl_keyfile)
        network = not is_loopback(host)
        if auth == "off" and network and not insecure_no_auth_on_network:
            raise UsageError(
                f"--auth off on {host} would make anyone who can reach this machine an admin "
                "(able to run code here); keep --auth auto (tokens), serve on 127.0.0.1, or "
                "add --insecure-no-auth-on-network if you truly mean it")
        ws = open_ws(workspace)
        ws.engine  # noqa: B018 - opens (and upgrades) the database before serving
        hosts = tuple(allowed_host or ())
        if network and host not in ("0.0.0.0", "::"):  # nosec B104  # compared, not bound
            hosts += (host,)
        app = create_app(ws, ServiceConfig(
            auth=auth, run_slots=run_slots, scan_interval=scan_interval, allowed_hosts=hosts,
            link_ttl=link_ttl, link_max_ttl=link_max_ttl))
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        if (clear := clear_text_warning(host, tls)) is not None:
            logging.getLogger("batchscore.service").warning(clear)
        scheme = "https" if tls else "http"
        if auth == "off":
            err_console.print(
                f"WARNING: --auth off: every request to {scheme}://{host}:{port}/ acts as an admin"
                " (it can run code on this machine)" + (", from any machine that reaches it"
                                                         if network else ""), style="bold red")
        console.print(f"batchscore: serving {ws.settings.root} on {scheme}://{host}:{port}/ "
                      f"(dashboard /dashboard/, API /api/v1)")
        if auth == "auto":
            console.print(f"admin token (for the CLI on this machine and the dashboard): "
                          f"{ws.settings.root / 'service' / 'admin.token'}")
        uvicorn.run(app, host=host, port=port, log_level="info",
                    **(tls.uvicorn_options() if tls else {}))


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
