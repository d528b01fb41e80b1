"""What every command shares: the workspace option and turning our errors into one message."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ..errors import BatchscoreError
from ..workspace import Workspace, open_workspace

__all__ = ["WorkspaceOpt", "console", "err_console", "errors", "open_ws"]

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


def open_ws(path: str | None) -> Workspace:
    return open_workspace(path)
