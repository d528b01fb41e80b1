"""``batchscore model``: the model registry (MLflow's) and online scoring."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._common import WorkspaceOpt, console, err_console, errors, open_ws
from .tls import SslCertOpt, SslKeyOpt

__all__ = ["app"]

app = typer.Typer(
    help="Registered models: versions, aliases (staging, production), promotion, serving."
    "\n\nExample:\n\n    batchscore model list\n    batchscore model promote diabetes",
    no_args_is_help=True,
)


def _line(v) -> str:  # type: ignore[no-untyped-def]
    aliases = f" [{', '.join(v.aliases)}]" if v.aliases else ""
    metrics = " ".join(f"{k}={val:g}" for k, val in sorted(v.metrics.items()))
    decision = v.tags.get("batchscore.decision", "")
    if "azureml.type" in v.tags:  # registered with batchscore model create
        decision = f"{v.tags['azureml.type']} version {v.tags.get('azureml.version')}"
    return f"{v.name}/{v.version}{aliases}  {metrics}  {decision}".rstrip()


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List registered model versions with their aliases and metrics.

    Example:

        batchscore model list
        batchscore model list diabetes --json
    """
    from ..mlops import list_models

    with errors():
        versions = list_models(open_ws(workspace), name)
        if as_json:
            console.print(json.dumps([v.to_dict() for v in versions], indent=2))
            return
        if not versions:
            console.print("no registered models")
        for v in versions:
            console.print(_line(v))


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME/VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show one model version: aliases, metrics, tags and its training run.

    Example:

        batchscore model show diabetes@production
    """
    from ..mlops import get_version

    with errors():
        v = get_version(open_ws(workspace), ref)
        if as_json:
            console.print(json.dumps(v.to_dict(), indent=2))
            return
        console.print(_line(v))
        console.print(f"uri: {v.uri}")
        console.print(f"training run: {v.run_id}")
        for key, value in sorted(v.tags.items()):
            console.print(f"{key}: {value}")


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    version: Annotated[int | None, typer.Option(
        help="The version to promote (default: the one holding 'staging').")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Point the production alias at a version (default: the staging version).

    Example:

        batchscore model promote diabetes
        batchscore model promote diabetes --version 3
    """
    from ..mlops import promote as promote_

    with errors():
        v = promote_(open_ws(workspace), name, version)
        console.print(f"{v.name}/{v.version} is production")


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    deploy: Annotated[bool, typer.Option(
        "--deploy/--no-deploy",
        help="Also swap a running production deployment back (default: yes).")] = True,
    workspace: WorkspaceOpt = None,
) -> None:
    """Restore the version that was in production before the current one.

    A running production deployment (`batchscore model deploy`) is swapped back to it first,
    without losing a request; when that swap fails nothing changes.

    Example:

        batchscore model rollback diabetes
        batchscore model rollback diabetes --no-deploy
    """
    from ..mlops.release import rollback_release

    with errors():
        result = rollback_release(open_ws(workspace), name, deploy=deploy)
        console.print(f"{result.name}/{result.version} is production again")
        if result.swapped:
            console.print(f"the deployment at {result.url} serves version {result.version}")


@app.command("deploy")
def deploy(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    version: Annotated[int | None, typer.Option(
        help="The version to serve (default: the one holding 'production').")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    no_log: Annotated[bool, typer.Option(
        "--no-log", help="Do not log requests to the data store.")] = False,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the model to be ready.")] = 120.0,
    ssl_certfile: SslCertOpt = None,
    ssl_keyfile: SslKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Start a long-lived production endpoint for a model, in the background.

    A supervisor process owns the socket and runs the scoring app (the same as `model serve`)
    in a child process; `model release` and `model rollback` swap the version it serves
    without losing a request. Its state and log are in the workspace's deployments/ folder.

    Example:

        batchscore model deploy diabetes --port 8080
        batchscore model deploy diabetes --version 2 --port 0
    """
    from ..mlops import get_version
    from ..serving.supervisor import start_deployment
    from ..tlsconfig import server_tls

    with errors():
        ws = open_ws(workspace)
        v = get_version(ws, f"{name}/{version}" if version is not None else f"{name}@production")
        d = start_deployment(ws, v.name, v.version, host=host, port=port,
                             log_requests=not no_log, timeout=timeout,
                             tls=server_tls(ssl_certfile, ssl_keyfile))
        console.print(f"{d.name}/{d.version} serves on {d.url} (supervisor pid {d.pid}, "
                      f"log {d.log})")


@app.command("undeploy")
def undeploy(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    env: Annotated[str, typer.Option(help="production or staging.")] = "production",
    workspace: WorkspaceOpt = None,
) -> None:
    """Stop a running deployment after it finishes the requests in flight.

    Example:

        batchscore model undeploy diabetes
    """
    from ..serving.supervisor import stop_deployment

    with errors():
        d = stop_deployment(open_ws(workspace), name, env)
        console.print(f"stopped {d.name}/{d.version} ({d.env}) on {d.url}")


@app.command("deployments")
def deployments(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List the running deployments: model, environment, version served, URL, pid.

    Example:

        batchscore model deployments --json
    """
    from ..serving.supervisor import list_deployments

    with errors():
        found = list_deployments(open_ws(workspace))
        if as_json:
            console.print(json.dumps([d.to_dict() for d in found], indent=2))
            return
        if not found:
            console.print("no running deployments")
        for d in found:
            console.print(f"{d.name}/{d.version} ({d.env}) {d.url} pid {d.pid}")


@app.command("release")
def release(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    version: Annotated[int | None, typer.Option(
        help="The version to release (default: the one holding 'staging').")] = None,
    sample: Annotated[str | None, typer.Option(
        help="A JSON file holding the rows to smoke-test with (a list of lists; default: the "
        "two sample rows of the original smoke test).")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for a deployment to be ready.")] = 120.0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Release a version: staging deployment, smoke test, promotion, production swap and test.

    A failed smoke test names the failing check, exits with code 1, and leaves the production
    alias and the running production deployment untouched.

    Example:

        batchscore model release diabetes
        batchscore model release diabetes --version 3 --sample rows.json
    """
    from pathlib import Path

    from ..errors import InputError
    from ..mlops.release import release as release_

    with errors():
        rows = None
        if sample is not None:
            try:
                rows = json.loads(Path(sample).read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"--sample {sample}: cannot read JSON rows: {exc}") from None
            if not isinstance(rows, list) or not rows or not all(
                    isinstance(r, list) for r in rows):
                raise InputError(f"--sample {sample} must hold a non-empty list of rows (lists)")
        result = release_(open_ws(workspace), name, version, rows=rows, timeout=timeout,
                          log=console.print)
        where = (f"; the deployment at {result.url} serves it" if result.url else "")
        console.print(f"released {result.name}/{result.version} to production{where}")


@app.command("dockerfile")
def dockerfile(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION.")],
    out: Annotated[str, typer.Option(help="The folder to write the recipe to.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a recipe already in --out.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a container recipe (Dockerfile, requirements, model folder) serving a model.

    Build it with `docker build` (see its README.md) or `make docker-image MODEL=...`.

    Example:

        batchscore model dockerfile diabetes@production --out image/
    """
    from ..mlops.container import write_recipe

    with errors():
        r = write_recipe(open_ws(workspace), ref, out, force=force)
        console.print(f"wrote the recipe of {r.name}/{r.version} to {r.out}")
        console.print(f"build it: docker build -t {r.image} {r.out}")


@app.command("serve")
def serve(
    ref: Annotated[str | None, typer.Argument(help="NAME@ALIAS or NAME/VERSION.")] = None,
    model_dir: Annotated[str | None, typer.Option(
        help="Serve this MLflow model folder instead of a registry version.")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    no_log: Annotated[bool, typer.Option(
        "--no-log", help="Do not log requests to the data store.")] = False,
    ssl_certfile: SslCertOpt = None,
    ssl_keyfile: SslKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Serve a model over HTTP (MLflow scoring protocol and Open Inference Protocol v2).

    Requests and predictions are logged to the data store under inference-logs/. With
    --model-dir the model comes from a folder (such as a container recipe's model/) and
    requests are logged only when a workspace exists. Latency and error-rate anomalies are
    logged, shown at /events and /metrics, and written to the workspace's events (the
    dashboard) when there is one; thresholds come from $BATCHSCORE_ANOMALY_* variables
    (docs/serving-events.md).

    Example:

        batchscore model serve diabetes@production --port 8080
        batchscore model serve --model-dir image/model --no-log
    """
    import uvicorn

    from ..errors import UsageError
    from ..serving import InferenceLogger, create_app, load_served_model
    from ..serving.anomaly import AnomalyConfig
    from ..serving.app import freeze_startup_heap, model_detector
    from ..serving.folder import load_model_folder
    from ..state.events import EventWriter
    from ..tlsconfig import clear_text_warning, server_tls

    with errors():
        tls = server_tls(ssl_certfile, ssl_keyfile)
        if (clear := clear_text_warning(host, tls)) is not None:
            err_console.print(clear)
        if (ref is None) == (model_dir is None):
            raise UsageError("give either a model reference (NAME@ALIAS, NAME/VERSION) or "
                             "--model-dir, not both and not neither")
        anomalies = AnomalyConfig.from_env()  # bad $BATCHSCORE_ANOMALY_* fail before the load
        if model_dir is not None:
            served = load_model_folder(model_dir)
            ws = None
            if not no_log:
                from ..config import find_workspace

                if (find_workspace(workspace) / "batchscore.toml").is_file():
                    ws = open_ws(workspace)
        else:
            ws = open_ws(workspace)
            served = load_served_model(ws, ref or "")
        logger = None if no_log or ws is None else InferenceLogger(ws.data)
        events = None if ws is None else EventWriter(ws.engine)  # anomaly events
        app_ = create_app(served, logger=logger, detector=model_detector(served, anomalies),
                          events=events)
        freeze_startup_heap()
        console.print(f"serving {served.name}/{served.version} on "
                      f"{'https' if tls else 'http'}://{host}:{port}")
        uvicorn.run(app_, host=host, port=port, log_level="info",
                    **(tls.uvicorn_options() if tls else {}))
