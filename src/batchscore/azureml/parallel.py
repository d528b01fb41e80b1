"""Azure ML parallel job YAMLs (``type: parallel``), run on the entry-script engine.

``task: {type: run_function, code, entry_script, program_arguments, append_row_to}`` with
``inputs``, ``outputs`` and ``input_data: ${{inputs.NAME}}``; ``${{inputs.NAME}}`` and
``${{outputs.NAME}}`` in ``program_arguments`` become the inputs' paths (or literal values)
and the outputs' folders, and the arguments reach the entry script in ``sys.argv`` (so that
``init()`` can ``argparse`` them, with ``parse_known_args``). ``--set KEY.PATH=VALUE`` changes
a key of the YAML before it is read (``--set inputs.data.path=other/``).

An output without ``path`` goes where Azure would put it, below the data store:
``azureml/<job name>/<output name>/``. Keys that only matter to the cloud (``compute``,
``display_name``, ``experiment_name``, ``description``, ``tags``, ``identity``, ...) are
accepted and ignored; any other key is refused. ``error_threshold`` counts failed items and
``mini_batch_error_threshold`` failed mini-batches (-1, the default: any number), as on Azure.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import SpecError

if TYPE_CHECKING:
    from ..jobs.spec import JobSpec
    from ..workspace import Workspace

__all__ = ["ParallelJob", "apply_sets", "load_parallel_job"]

_IGNORED = {"$schema", "display_name", "experiment_name", "compute", "description", "tags",
            "properties", "identity", "name", "is_deterministic", "version"}
_KEYS = {"type", "inputs", "outputs", "input_data", "task", "mini_batch_size", "resources",
         "max_concurrency_per_instance", "error_threshold", "mini_batch_error_threshold",
         "retry_settings",
         "logging_level", "partition_keys", "environment_variables"} | _IGNORED
_TASK = {"type", "code", "entry_script", "program_arguments", "environment",
         "append_row_to", "environment_variables"}
_EXPR = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FILE_TYPES = {"uri_folder", "uri_file", "custom_model", "mlflow_model"}
_LITERAL_TYPES = {"string", "integer", "number", "boolean"}


@dataclass(frozen=True)
class ParallelJob:
    """What a parallel job YAML runs: the job spec, its inputs and output folder."""

    spec: JobSpec
    inputs: list[str]
    output: str
    arguments: list[str]


def apply_sets(raw: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """``KEY.PATH=VALUE`` pairs applied to the mapping (VALUE read as YAML)."""
    for pair in sets:
        key, sep, text = pair.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SpecError(f"--set {pair!r}: expected KEY.PATH=VALUE, as in "
                            "inputs.data.path=folder/")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else {"value": child}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return raw


def _local(path: str, base: Path) -> str:
    if "://" in path or path.startswith("azureml:"):
        return path
    return str((base / path).resolve())


def load_parallel_job(ws: Workspace, path: Path, sets: list[str] | None = None
                      ) -> ParallelJob:
    """Read ``path`` (a ``type: parallel`` job YAML) into what :func:`run` needs."""
    from ..jobs.spec import spec_from_mapping

    raw = _read(path, sets)
    source = str(path)
    base = path.parent.resolve()
    task = _check_keys(raw, source)
    job_name = str(raw.get("name") or raw.get("display_name") or path.stem)
    values = _inputs(ws, raw.get("inputs") or {}, source, base)
    folders, named_files = _outputs(ws, raw.get("outputs") or {}, base, job_name)
    refs = _References(source, values, folders)
    data = refs.input_data(raw.get("input_data"))
    arguments = refs.arguments(task.get("program_arguments") or "")
    output, settings = _output_action(ws, task.get("append_row_to"), refs, named_files,
                                      job_name)
    for name, folder in folders.items():  # the script writes into the others
        if name not in named_files and folder != output and "://" not in folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    mapping = {"name": job_name, "code": _code(task, base, source),
               "scoring_script": str(task["entry_script"]), "program_arguments": arguments,
               **settings, **_settings(raw, task, base, source)}
    spec = spec_from_mapping(mapping, base_dir=base, source=source)
    return ParallelJob(spec, [data], output, arguments)


def _read(path: Path, sets: list[str] | None) -> dict[str, Any]:
    """The YAML mapping of ``path``, with ``--set`` pairs applied."""
    from ..jobs.spec import read_yaml_mapping

    return apply_sets(read_yaml_mapping(path, "job"), list(sets or []))


def _check_keys(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Check the job's type and keys and its task's; the task."""
    if raw.get("type") != "parallel":
        raise SpecError(f"{source}: type is {raw.get('type')!r}; batchscore job create runs "
                        "parallel jobs (type: parallel); a deployment YAML runs with "
                        "batchscore job run")
    for key in raw:
        if key not in _KEYS:
            raise SpecError(f"{source}: unknown key {key!r} of a parallel job")
    task = raw.get("task")
    if not isinstance(task, dict):
        raise SpecError(f"{source}: task is required (type: run_function, code, "
                        "entry_script)")
    for key in task:
        if key not in _TASK:
            raise SpecError(f"{source}: unknown key task.{key}")
    if task.get("type", "run_function") != "run_function":
        raise SpecError(f"{source}: task.type {task.get('type')!r}: only run_function runs")
    if not task.get("entry_script"):
        raise SpecError(f"{source}: task.entry_script is required")
    return task


def _inputs(ws: Workspace, inputs: dict[str, Any], source: str, base: Path) -> dict[str, str]:
    """Each input's value: a path (file, folder, data or model asset) or a literal."""
    values: dict[str, str] = {}
    for name, value in inputs.items():
        if isinstance(value, dict):
            values[name] = _input(ws, name, value, source, base)
        elif isinstance(value, str | int | float | bool):
            values[name] = _literal(value)
        else:
            raise SpecError(f"{source}: inputs.{name} must be a value or a mapping")
    return values


def _input(ws: Workspace, name: str, value: dict[str, Any], source: str, base: Path) -> str:
    """One input given as a mapping (``type``, ``path`` or ``value``/``default``)."""
    from ..registry.assets import resolve_input, resolve_model

    kind = str(value.get("type", "uri_folder"))
    if kind == "mltable":
        raise SpecError(f"{source}: inputs.{name} is an mltable; give the folder of "
                        "CSV or Parquet files as uri_folder instead")
    if kind in _LITERAL_TYPES:
        literal = value.get("value", value.get("default"))
        if literal is None:
            raise SpecError(f"{source}: inputs.{name} has no value")
        return _literal(literal)
    if kind not in _FILE_TYPES:
        raise SpecError(f"{source}: inputs.{name}: type {kind!r} is not one of "
                        f"{', '.join(sorted(_FILE_TYPES | _LITERAL_TYPES))}")
    if not value.get("path"):
        raise SpecError(f"{source}: inputs.{name} has no path (give it with --set "
                        f"inputs.{name}.path=...)")
    where = _local(str(value["path"]), base)
    if kind in ("custom_model", "mlflow_model") and where.startswith("azureml:"):
        where = resolve_model(ws, where).location
    else:
        where = resolve_input(ws, where)
    return _plain(where)


def _outputs(ws: Workspace, outputs: dict[str, Any], base: Path, job_name: str
             ) -> tuple[dict[str, str], set[str]]:
    """Each output's folder (its ``path``, else ``azureml/<job>/<output>/`` of the data
    store), and the names of the ``uri_file`` outputs given a path (the file's own name)."""
    from ..storage import to_url

    folders: dict[str, str] = {}
    named_files: set[str] = set()
    for name, value in outputs.items():
        value = value if isinstance(value, dict) else {}
        if value.get("path") and str(value.get("type", "uri_folder")) == "uri_file":
            named_files.add(name)
        if value.get("path"):
            where = _local(str(value["path"]), base)
        else:
            where = ws.data.url_of("azureml", job_name, name)
        folders[name] = _plain(to_url(where))
    return folders, named_files


@dataclass(frozen=True)
class _References:
    """``${{inputs.NAME}}`` and ``${{outputs.NAME}}`` replaced by the inputs' values and the
    outputs' folders."""

    source: str
    values: dict[str, str]
    folders: dict[str, str]

    def substitute(self, text: str, what: str) -> str:
        def one(match: re.Match[str]) -> str:
            table = self.values if match.group(1) == "inputs" else self.folders
            if match.group(2) not in table:
                raise SpecError(f"{self.source}: {what} refers to {match.group(0)}, which is "
                                f"not among the job's {match.group(1)} "
                                f"({', '.join(table) or 'none'})")
            return table[match.group(2)]

        return _EXPR.sub(one, text)

    def input_data(self, input_data: Any) -> str:
        """``input_data: ${{inputs.NAME}}``: the path the job reads."""
        if not isinstance(input_data, str) or not _EXPR.fullmatch(input_data.strip()):
            raise SpecError(f"{self.source}: input_data must be ${{{{inputs.NAME}}}}")
        return self.substitute(input_data.strip(), "input_data")

    def arguments(self, text: Any) -> list[str]:
        """``task.program_arguments`` (a list, or a shell-quoted string) for ``sys.argv``."""
        if isinstance(text, list):
            return [self.substitute(str(a), "program_arguments") for a in text]
        return [self.substitute(a, "program_arguments") for a in shlex.split(str(text))]


def _output_action(ws: Workspace, append: Any, refs: _References, named_files: set[str],
                   job_name: str) -> tuple[str, dict[str, Any]]:
    """``task.append_row_to``: the job's output folder and its output settings (append_row
    into that output, else summary_only into ``azureml/<job>/summary``)."""
    settings: dict[str, Any] = {}
    if not append:
        settings["output_action"] = "summary_only"
        return ws.data.url_of("azureml", job_name, "summary"), settings
    match = _EXPR.fullmatch(str(append).strip())
    if not match or match.group(1) != "outputs":
        raise SpecError(f"{refs.source}: task.append_row_to must be ${{{{outputs.NAME}}}}")
    target = refs.substitute(str(append).strip(), "task.append_row_to")
    if match.group(2) in named_files:
        output, _, file_name = target.rstrip("/").rpartition("/")
        settings["output_file_name"] = file_name
    else:
        output = target
        settings["output_file_name"] = "parallel_run_step.txt"
    settings["output_action"] = "append_row"
    return output, settings


def _code(task: dict[str, Any], base: Path, source: str) -> str:
    """``task.code``: a local folder (default: the YAML's own)."""
    if not task.get("code"):
        return str(base)
    code = _local(str(task["code"]), base)
    if "://" in code:
        raise SpecError(f"{source}: task.code must be a local folder")
    return code


def _settings(raw: dict[str, Any], task: dict[str, Any], base: Path, source: str
              ) -> dict[str, Any]:
    """The job settings: batching, retries, instances, environment variables, requirements."""
    from ..jobs.environment import environment_requirements

    resources = raw.get("resources") or {}
    if not isinstance(resources, dict):
        raise SpecError(f"{source}: resources must be a mapping")
    requirements = environment_requirements(task.get("environment"), base, source)
    env = {**(raw.get("environment_variables") or {}),
           **(task.get("environment_variables") or {})}
    return {
        **{k: raw[k] for k in ("mini_batch_size", "max_concurrency_per_instance",
                               "error_threshold", "mini_batch_error_threshold",
                               "retry_settings", "logging_level", "partition_keys")
           if raw.get(k) is not None},
        **({"instance_count": resources["instance_count"]}
           if resources.get("instance_count") is not None else {}),
        **({"environment_variables": env} if env else {}),
        **({"requirements": requirements} if requirements else {}),
    }


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # as Azure passes booleans
    return str(value)


def _plain(where: str) -> str:
    """A local path without ``file://`` (what a script gets in sys.argv)."""
    return where.removeprefix("file://") if where.startswith("file://") else where
