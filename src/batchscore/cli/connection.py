"""``batchscore connection``: the database connections callers of the service may name."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .. import connections as api
from ._common import WorkspaceOpt, console, errors, open_ws

__all__ = ["app"]

app = typer.Typer(
    help="Database connections (admin): a name bound to a database URL and the limits of the "
    "queries through it. Callers of the service name connection:NAME, never a URL; the URL "
    "and its password stay in the workspace.\n\n"
    "Example:\n\n"
    "    batchscore connection create warehouse 'postgresql://reader:...@db/sales' \\\n"
    "        --statement-timeout 30 --max-rows 500000",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="Connection name.")]


@app.command()
def create(
    name: Name,
    url: Annotated[str, typer.Argument(help="postgresql://USER:PASSWORD@HOST/DB (or "
                                       "sqlite:///FILE, from this command line only).")],
    statement_timeout: Annotated[float, typer.Option(
        help="Seconds a query may run.")] = api.DEFAULT_STATEMENT_TIMEOUT,
    max_rows: Annotated[int, typer.Option(
        help="Rows a query may return (more fails the job).")] = api.DEFAULT_MAX_ROWS,
    allow_output: Annotated[bool, typer.Option(
        "--allow-output", help="Jobs may append predictions to tables of this database.")
    ] = False,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Register a database connection.

    Example:

        batchscore connection create warehouse 'postgresql://reader:PASSWORD@db/sales' \\
            --statement-timeout 30 --max-rows 500000
    """
    with errors():
        found = api.create_connection(open_ws(workspace), name, url,
                                      statement_timeout=statement_timeout, max_rows=max_rows,
                                      allow_output=allow_output, description=description)
        console.print(f"connection {found.name} created ({found.dialect})")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List the registered connections (never their URLs).

    Example:

        batchscore connection list --json
    """
    with errors():
        found = api.list_connections(open_ws(workspace))
        if as_json:
            print(json.dumps([c.to_dict() for c in found], indent=2))
            return
        table = Table("name", "dialect", "statement timeout", "max rows", "outputs")
        for c in found:
            table.add_row(c.name, c.dialect, f"{c.statement_timeout:g}s", str(c.max_rows),
                          "yes" if c.allow_output else "no")
        console.print(table)


@app.command()
def delete(name: Name, workspace: WorkspaceOpt = None) -> None:
    """Remove a connection (jobs planned through it keep their snapshots).

    Example:

        batchscore connection delete warehouse
    """
    with errors():
        api.delete_connection(open_ws(workspace), name)
        console.print(f"connection {name} deleted")
