"""``batchscore pipeline``: run a project's train-evaluate-register pipeline."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InputError, UsageError
from ._common import WorkspaceOpt, console, errors, open_ws

__all__ = ["app"]

app = typer.Typer(
    help="Run pipelines on this machine.\n\nExample:\n\n"
    "    batchscore pipeline run train-evaluate-register --project examples/diabetes",
    no_args_is_help=True,
)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The pipeline: train-evaluate-register.")],
    project: Annotated[str, typer.Option(help="The project folder (with params.yaml).")],
    param: Annotated[list[str] | None, typer.Option(
        help="Override a params.yaml value, SECTION.KEY=VALUE (repeatable).")] = None,
    data: Annotated[str | None, typer.Option(
        help="A CSV file to train on instead of the project's data.load().")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run a pipeline: data tests, train, evaluate against production, register.

    Example:

        batchscore pipeline run train-evaluate-register --project examples/diabetes
        batchscore pipeline run train-evaluate-register --project my-project --param train.alpha=0.1
    """
    from ..mlops import PIPELINE_NAME, train_evaluate_register

    with errors():
        if name != PIPELINE_NAME:
            raise UsageError(f"pipeline run runs {PIPELINE_NAME!r} on this machine; got "
                             f"{name!r} (published pipelines run through triggers and the "
                             "service)")
        overrides = {}
        for pair in param or []:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--param takes SECTION.KEY=VALUE, got {pair!r}")
            overrides[key.strip()] = value
        frame = None
        if data is not None:
            import pandas as pd

            try:
                frame = pd.read_csv(data)
            except (OSError, ValueError) as exc:
                raise InputError(f"--data {data!r} cannot be read as CSV: {exc}") from None
        outcome = train_evaluate_register(open_ws(workspace), project, data=frame,
                                          overrides=overrides, log=console.print)
        console.print(f"pipeline run {outcome.pipeline_run} succeeded: "
                      f"{outcome.model_name}/{outcome.version} "
                      + ("promoted to staging" if outcome.promoted else "not promoted"))
