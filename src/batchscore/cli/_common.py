"""What every command shares: the workspace option and turning our errors into one message."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from ..errors import BatchscoreError, SpecError, UsageError
from ..workspace import Workspace, open_workspace

__all__ = [
    "ServerOpt",
    "TokenOpt",
    "WorkspaceOpt",
    "call_server",
    "console",
    "err_console",
    "errors",
    "key_values",
    "open_ws",
]

# Everything printed is data (paths, reasons, tracebacks): no markup, no highlighting, and
# long lines are not wrapped, so that output can be copied and piped as it is.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace", "-w", envvar="BATCHSCORE_WORKSPACE",
        help="Workspace folder (default ./.batchscore).", show_default=False,
    ),
]


ServerOpt = Annotated[str | None, typer.Option(
    "--server", envvar="BATCHSCORE_SERVER",
    help="Act through a running service (its URL) instead of the workspace.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="BATCHSCORE_TOKEN",
    help="API token for --server (default: for a service on this machine, the admin token "
    "it wrote in the workspace's service/admin.token).")]


def call_server(server: str, token: str | None, method: str, path: str,
                body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
                ) -> Any:
    """One call of the service's REST API (``/api/v1`` + ``path``); errors as UsageError."""
    import httpx

    from ..tlsconfig import client_verify

    token = token or local_token(server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, f"{server.rstrip('/')}/api/v1{path}", json=body,
                                 params=params, headers=headers, timeout=60,
                                 verify=client_verify())
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach the service at {server}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise UsageError(f"the service answered {response.status_code}: {detail}")
    return response.json()


def local_token(server: str) -> str | None:
    """For a service on this machine (a loopback address), the admin token it wrote into the
    workspace (``--workspace``/``$BATCHSCORE_WORKSPACE``/``./.batchscore``); never sent to
    another host."""
    import ipaddress
    from urllib.parse import urlsplit

    from ..config import find_workspace

    host = (urlsplit(server).hostname or "").lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    try:  # the file batchscore.service.auth.write_admin_token writes (not imported: no fastapi)
        return (find_workspace(None) / "service" / "admin.token").read_text().strip() or None
    except OSError:
        return None


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Print a BatchscoreError as one line on stderr and exit with its code (2 for bad input)."""
    try:
        yield
    except BatchscoreError as exc:
        err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


def key_values(pairs: Iterable[str] | None,
               error: str = "--param takes KEY=VALUE, got {pair!r}") -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a dict (keys stripped); a pair without ``=`` or
    without a key is a SpecError, ``error`` formatted with the pair."""
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(error.format(pair=pair))
        found[key.strip()] = value
    return found


def open_ws(path: str | None) -> Workspace:
    return open_workspace(path)
