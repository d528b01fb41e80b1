"""The ``batchscore`` command: thin shells over the library's functions, one module per noun."""

from __future__ import annotations

import typer

from . import (
    assets,
    ci,
    cluster,
    connection,
    deployment,
    endpoint,
    job,
    model,
    pipeline,
    serve,
    tls,
    trigger,
    video,
    workspace,
)
from . import stream as stream_cli

__all__ = ["app", "main"]

app = typer.Typer(
    name="batchscore",
    help="Self-hosted batch scoring: Azure ML style scoring scripts over files and tables, "
    "in parallel, resumable, with logs in storage.\n\n"
    "Example:\n\n"
    "    batchscore init\n"
    "    batchscore job run deployment.yml --input 'data/*.csv' --input-format csv "
    "--output out/",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tls.register(app)  # --ca-file for --server https://...
workspace.register(app)
ci.register(app)
job.app.command("create")(assets.job_create)
app.add_typer(job.app, name="job")
app.add_typer(video.app, name="video")
serve.register(app)
app.add_typer(trigger.app, name="trigger")
model.app.command("create")(assets.model_create)
app.add_typer(model.app, name="model")
app.add_typer(assets.data_app, name="data")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(connection.app, name="connection")
app.add_typer(deployment.app, name="deployment")
app.add_typer(stream_cli.app, name="stream")
app.add_typer(cluster.app, name="cluster")


def main() -> None:
    """The console script: secrets first (so --token and URLs may come from the secrets
    file, and redaction is on before anything logs), then the command."""
    import gc
    import sys

    from ..secrets import init_secrets
    from ._common import errors

    try:
        with errors():  # a bad secrets file: the same one-line error as any command's
            init_secrets()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    try:
        app()
    finally:
        # The interpreter's exit collects every object the imports made (scikit-learn's,
        # SciPy's, pandas'...): 0.3-0.45 s of CPU per command here, for memory the process
        # gives back anyway. Frozen objects are left to the exit: atexit handlers, thread
        # joins and module teardown still run; garbage cycles' __del__ at exit is what
        # Python never promised.
        gc.freeze()
