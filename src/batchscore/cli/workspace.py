"""``batchscore init``: create a workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from ..workspace import init_workspace
from ._common import WorkspaceOpt, console, errors

__all__ = ["register"]


def init(
    workspace: WorkspaceOpt = None,
    database_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL of the state database (default: SQLite in the workspace).")] = None,
    data_store: Annotated[str | None, typer.Option(
        help="fsspec URL of the data store (default: the workspace's data/ folder).")] = None,
    system_store: Annotated[str | None, typer.Option(
        help="fsspec URL of the system store (default: the workspace's system/ folder).")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(
        help="Redis of the event streams (redis://host:6379/0); streams may name their own.")
    ] = None,
) -> None:
    """Create a workspace: settings, state database and the data and system stores.

    Running it again on an existing workspace upgrades its database and changes nothing else.

    Example:

        batchscore init
        batchscore init -w /srv/batchscore --database-url postgresql+psycopg://u@db/batchscore
    """
    with errors():
        ws = init_workspace(workspace, database_url=database_url, data_store=data_store,
                            system_store=system_store, redis_url=redis_url)
        s = ws.settings
        console.print(f"workspace {s.root}")
        console.print(f"  database {s.database_url}")
        console.print(f"  data     {s.data_store}")
        console.print(f"  system   {s.system_store}")
        if s.redis_url:
            console.print(f"  redis    {s.redis_url}")


def register(app: typer.Typer) -> None:
    app.command()(init)
