"""The ``batchscore`` command: thin shells over the library's functions, one module per noun."""

from __future__ import annotations

import typer

from . import job, workspace

__all__ = ["app", "main"]

app = typer.Typer(
    name="batchscore",
    help="Self-hosted batch scoring: Azure ML style scoring scripts over files and tables, "
    "in parallel, resumable, with logs in storage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
workspace.register(app)
app.add_typer(job.app, name="job")


def main() -> None:
    app()
