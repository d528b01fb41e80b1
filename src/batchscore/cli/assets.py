"""Azure ML's commands: ``batchscore model create`` and ``batchscore data`` (model and data
assets, as ``az ml model create`` / ``az ml data create``), ``batchscore job create -f``
(a parallel job YAML, as ``az ml job create``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import SpecError
from ._common import WorkspaceOpt, console, errors, key_values, open_ws

__all__ = ["data_app", "job_create", "model_create"]

FileOpt = Annotated[Path | None, typer.Option(
    "--file", "-f", help="A YAML in Azure's schema; flags win over its keys.",
    show_default=False)]
TagOpt = Annotated[list[str] | None, typer.Option(
    "--tag", help="KEY=VALUE (repeatable).", show_default=False)]


def _merged(file: Path | None, kind: str, flags: dict[str, Any]) -> dict[str, Any]:
    from ..registry.assets import load_asset_yaml

    raw = load_asset_yaml(file, kind) if file is not None else {}
    if flags.get("path") is not None:
        flags["path"] = str(Path(flags["path"]).resolve()) if "://" not in flags["path"] \
            else flags["path"]
    tags = {**(raw.get("tags") or {}), **(flags.pop("tags") or {})}
    merged = {**raw, **{k: v for k, v in flags.items() if v is not None}, "tags": tags}
    for key in ("name", "path"):
        if not merged.get(key):
            raise SpecError(f"{kind} {key} is missing: give --{key} or {key}: in --file")
    return merged


def model_create(
    name: Annotated[str | None, typer.Option(help="Model name.", show_default=False)] = None,
    path: Annotated[str | None, typer.Option(
        help="The model's folder or file.", show_default=False)] = None,
    type: Annotated[str | None, typer.Option(
        "--type", help="custom_model (default) or mlflow_model.", show_default=False)] = None,
    version: Annotated[str | None, typer.Option(
        help="Version (default: the next number).", show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    tag: TagOpt = None,
    file: FileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Register a model folder or file as a new version in the workspace's registry.

    Example:

        batchscore model create --name heart-classifier --type mlflow_model --path model/
        batchscore model create -f model.yml
    """
    from ..registry.assets import register_model

    with errors():
        spec = _merged(file, "model", {"name": name, "path": path, "type": type,
                                       "version": version, "description": description,
                                       "tags": key_values(tag, "--tag {pair!r}: expected "
                                                          "KEY=VALUE")})
        v = register_model(open_ws(workspace), str(spec["name"]), str(spec["path"]),
                           type=str(spec.get("type") or "custom_model"),
                           version=None if spec.get("version") is None
                           else str(spec["version"]),
                           description=spec.get("description"), tags=spec["tags"])
        if as_json:
            console.print(json.dumps(v.to_dict(), indent=2))
            return
        console.print(f"model {v.name} version {v.tags.get('azureml.version', v.version)} "
                      f"registered ({v.tags.get('azureml.type')}, {v.uri})")


data_app = typer.Typer(
    help="Data assets: a name and version for a folder or file, used as "
    "--input azureml:NAME@latest.\n\nExample:\n\n"
    "    batchscore data create --name heart-unlabeled --path data/ --type uri_folder",
    no_args_is_help=True,
)


@data_app.command("create")
def data_create(
    name: Annotated[str | None, typer.Option(help="Data asset name.", show_default=False)
                    ] = None,
    path: Annotated[str | None, typer.Option(
        help="A folder or file (path or URL); it stays where it is.", show_default=False)
    ] = None,
    type: Annotated[str | None, typer.Option(
        "--type", help="uri_folder (default) or uri_file.", show_default=False)] = None,
    version: Annotated[str | None, typer.Option(
        help="Version (default: the next number).", show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    tag: TagOpt = None,
    file: FileOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Register a data asset (a new version).

    Example:

        batchscore data create --name heart-unlabeled --path data/ --type uri_folder
        batchscore data create -f data.yml
    """
    from ..registry.assets import register_data

    with errors():
        spec = _merged(file, "data", {"name": name, "path": path, "type": type,
                                      "version": version, "description": description,
                                      "tags": key_values(tag, "--tag {pair!r}: expected "
                                                         "KEY=VALUE")})
        asset = register_data(open_ws(workspace), str(spec["name"]), str(spec["path"]),
                              type=str(spec.get("type") or "uri_folder"),
                              version=None if spec.get("version") is None
                              else str(spec["version"]),
                              description=spec.get("description"), tags=spec["tags"])
        console.print(f"data {asset.name} version {asset.version} registered ({asset.type}, "
                      f"{asset.path})")


@data_app.command("list")
def data_list(
    name: Annotated[str | None, typer.Argument(help="Only this asset's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List data assets and their versions.

    Example:

        batchscore data list heart-unlabeled
    """
    from ..registry.assets import list_data

    with errors():
        assets = list_data(open_ws(workspace), name)
        if as_json:
            console.print(json.dumps([a.to_dict() for a in assets], indent=2))
            return
        if not assets:
            console.print("no data assets")
        for a in assets:
            console.print(f"{a.name}:{a.version}  {a.type}  {a.path}")


@data_app.command("show")
def data_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME:VERSION.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Show one data asset version as JSON.

    Example:

        batchscore data show heart-unlabeled@latest
    """
    from ..registry.assets import get_data

    with errors():
        console.print(json.dumps(get_data(open_ws(workspace), ref).to_dict(), indent=2))


def job_create(
    file: Annotated[Path, typer.Option(
        "--file", "-f", help="A parallel job YAML (type: parallel).", show_default=False)],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY.PATH=VALUE changed in the YAML before it is read (repeatable), "
        "as in inputs.data.path=other/.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished output.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    env_manager: Annotated[str | None, typer.Option(
        help="local or virtualenv (the task's environment as a cached virtualenv; default: "
        "the workspace's executor.env_manager, else local).",
        show_default=False)] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run an Azure ML parallel job YAML (the az ml job create equivalent) to its end.

    Example:

        batchscore job create -f job.yml --set inputs.score_data.path=data/
    """
    from ..azureml.parallel import load_parallel_job
    from ..backend.local import LocalBackend
    from ..jobs import spec_from_mapping, submit_job
    from ._common import Report, err_console

    with errors():
        here = LocalBackend(open_ws(workspace))
        job = load_parallel_job(here.ws, file, list(set_ or []))
        spec = job.spec
        if env_manager is not None:
            spec = spec_from_mapping({**spec.model_dump(), "env_manager": env_manager},
                                     source="--env-manager")
        record, created = submit_job(here.ws, spec, job.inputs, job.output,
                                     overwrite=overwrite)
        code = here.run_submitted(record, created, spec.workers, executor=None,
                                  report=Report(progress and err_console.is_terminal))
        if code:
            raise typer.Exit(code)
