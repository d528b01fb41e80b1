"""``batchscore ci``: the build pipeline of a user's project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import console, errors

__all__ = ["register"]


def ci(
    project: Annotated[Path, typer.Option(help="The project folder (with params.yaml).")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Print every check's output.")] = False,
) -> None:
    """Run a project's code quality, unit tests and data tests; exit 1 when one fails.

    Example:

        batchscore ci --project examples/diabetes
    """
    from ..mlops.ci import run_ci

    with errors():
        results = run_ci(project)
        for r in results:
            mark = {True: "[green]passed[/]", False: "[red]FAILED[/]", None: "skipped"}[r.passed]
            console.print(f"{r.name:<22} {mark}", markup=True, highlight=False)
            if verbose or r.passed is False:
                console.print(r.details, markup=False, highlight=False)
        if any(r.passed is False for r in results):
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(ci)
