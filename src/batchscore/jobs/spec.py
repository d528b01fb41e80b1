"""Job specs: the settings of a batch job, in Azure ML batch deployment terms.

A deployment YAML in the Azure ML form is accepted as it is: settings at the top level or
under ``settings:``, ``resources.instance_count`` (plus each worker's ``resources.num_cpus``
and ``num_gpus`` on the ray executor), ``code_configuration.code`` / ``scoring_script``,
``model.path``. Keys that only matter to the cloud (``environment``,
``compute``, ``$schema``, ...) are accepted and ignored; any other key is refused, with the
closest known key suggested.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import MissingCondaFile, SpecError
from ..io.sizes import parse_size
from .environment import environment_requirements, python_note
from .refs import model_ref

__all__ = ["JobSpec", "RetrySettings", "load_spec", "parse_size", "read_yaml_mapping",
           "spec_from_mapping", "spec_with_overrides"]

# Keys of an Azure ML deployment YAML that say nothing to a local job.
_IGNORED = {
    "$schema", "description", "endpoint_name", "type", "environment", "compute",
    "tags", "properties", "code_path", "scoring_script_path",
}
_SETTINGS = {
    "mini_batch_size", "output_action", "output_file_name", "retry_settings",
    "error_threshold", "logging_level", "max_concurrency_per_instance", "instance_count",
    "environment_variables", "input_format", "partition_keys", "input_encoding",
}
_RESOURCES = {"instance_count", "num_cpus", "num_gpus"}
_TOP = {"name", "kind", "model", "code_configuration", "resources", "settings", "scoring_script",
        "code", "model_dir", "options", "program_arguments", "mini_batch_error_threshold",
        "env_manager", "requirements"} | _SETTINGS | _RESOURCES
TABULAR_MINI_BATCH_ROWS = 100_000  # a tabular job's default: 10 (for files) is tiny for rows


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(3, ge=0, le=100)
    timeout: float = Field(30.0, gt=0)


class JobSpec(BaseModel):
    """Everything that defines a job except its inputs and output location."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "job"
    kind: Literal["script", "video", "tabular"] = "script"
    code: str | None = None
    scoring_script: str | None = None
    model_dir: str | None = None
    mini_batch_size: int | str = 10
    output_action: Literal["append_row", "summary_only"] = "append_row"
    output_file_name: str = "predictions.csv"
    retry_settings: RetrySettings = RetrySettings()
    error_threshold: int = Field(-1, ge=-1)
    # failed mini-batches tolerated (a parallel job's key; -1: any number)
    mini_batch_error_threshold: int = Field(-1, ge=-1)
    logging_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    max_concurrency_per_instance: int = Field(1, ge=1, le=256)
    instance_count: int = Field(1, ge=1, le=1024)
    num_cpus: float | None = Field(None, gt=0)  # per worker, on the ray executor
    num_gpus: float = Field(0, ge=0)  # per worker, on the ray executor
    environment_variables: dict[str, str] = {}
    input_format: Literal["files", "csv", "parquet", "sql"] = "files"
    partition_keys: list[str] = []
    input_encoding: str = "utf-8"
    options: dict[str, Any] = {}  # settings of built-in job kinds (video, tabular; sql query)
    program_arguments: list[str] = []  # the entry script's sys.argv[1:] (parallel jobs)
    # where the script runs; None: the workspace's setting (executor.env_manager), read
    # when the job is submitted
    env_manager: Literal["local", "virtualenv"] | None = None
    requirements: list[str] = []  # the environment's pip requirements (virtualenv)

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "tabular" \
                and data.get("mini_batch_size") is None:
            return {**data, "mini_batch_size": TABULAR_MINI_BATCH_ROWS}
        return data

    @field_validator("logging_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("mini_batch_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a count or a size such as '10kb', not a boolean")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # "10" (a quoted number) is a count, not 10 bytes
        if isinstance(value, int):
            if value < 1:
                raise ValueError("must be at least 1")
            return value
        if isinstance(value, str):
            parse_size(value)
            return value.strip().lower()
        raise ValueError("must be a count or a size such as '10kb'")

    @field_validator("input_format", mode="before")
    @classmethod
    def _input_format(cls, value: Any) -> Any:
        if value not in ("files", "csv", "parquet", "sql"):
            raise ValueError("Input should be 'files', 'csv' or 'parquet', or 'sql' (one "
                             "database URL as input, and options.query)")
        return value

    @field_validator("input_encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value

    @field_validator("output_file_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError(f"must be a plain file name, not {value!r}")
        return value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @property
    def workers(self) -> int:
        """Worker processes on one machine: instances times concurrency per instance."""
        return self.instance_count * self.max_concurrency_per_instance

    @property
    def script_path(self) -> Path | None:
        if self.scoring_script is None:
            return None
        path = Path(self.scoring_script)
        if not path.is_absolute() and self.code:
            path = Path(self.code) / path
        return path

    def fingerprint(self) -> str:
        """A hash of the settings and of the scoring script's bytes."""
        digest = hashlib.sha256(self.model_dump_json().encode())
        path = self.script_path
        if path is not None and path.is_file():
            digest.update(path.read_bytes())
        return digest.hexdigest()


def load_spec(path: str | Path, **overrides: Any) -> JobSpec:
    """Read a job spec from a deployment YAML; ``overrides`` (not None) win over the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"job spec {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"job spec {str(path)!r} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"job spec {str(path)!r} must be a mapping, not {type(raw).__name__}")
    return spec_from_mapping(raw, base_dir=path.parent.resolve(), source=str(path), **overrides)


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """An Azure ML YAML file (``what``: ``endpoint``, ``model``, ...) as a mapping; a missing
    file, bad YAML or another document is a :class:`SpecError` naming the file."""
    if not path.is_file():
        raise SpecError(f"{what} file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"{what} file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{what} file {str(path)!r} must be a mapping")
    return raw


def spec_from_mapping(
    raw: dict[str, Any],
    *,
    base_dir: Path | None = None,
    source: str = "job spec",
    **overrides: Any,
) -> JobSpec:
    """Build a :class:`JobSpec` from a deployment mapping (Azure ML keys) plus overrides."""
    base_dir = base_dir or Path.cwd()
    flat: dict[str, Any] = {}
    env_error: str | None = None
    env_note: str | None = None
    for key, value in raw.items():
        if key == "environment":  # its pip requirements, for --env-manager virtualenv
            env_note = python_note(value, base_dir)
            try:
                requirements = environment_requirements(value, base_dir, source)
            except MissingCondaFile as exc:  # an error under virtualenv only
                env_error = str(exc)
                continue
            if requirements:
                flat["requirements"] = requirements
            continue
        if key in _IGNORED:
            continue
        if key not in _TOP:
            raise SpecError(f"{source}: unknown key {key!r}{_suggest(key, _TOP | _IGNORED)}")
        if key == "settings":
            flat.update(_section(value, "settings", _SETTINGS, source))
        elif key == "resources":
            res = _section(value, "resources", _RESOURCES, source)
            flat.update(res)
        elif key == "code_configuration":
            cc = _section(value, "code_configuration", {"code", "scoring_script"}, source)
            flat.update(cc)
        elif key == "model":
            if overrides.get("model_dir") is None:  # --model-dir wins over the file's model
                flat["model_dir"] = _model_path(value, source)
        else:
            flat[key] = value
    if env_error is not None:
        flat["options"] = {**(flat.get("options") or {}), "environment_error": env_error}
    if env_note is not None:
        flat["options"] = {**(flat.get("options") or {}), "environment_note": env_note}
    flat.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(flat.get("retry_settings"), dict):
        extra = set(flat["retry_settings"]) - {"max_retries", "timeout"}
        if extra:
            bad = sorted(extra)[0]
            raise SpecError(
                f"{source}: unknown key retry_settings.{bad}"
                f"{_suggest(bad, {'max_retries', 'timeout'})}"
            )
    for key in ("code", "model_dir"):
        if flat.get(key) and "://" not in str(flat[key]) \
                and not str(flat[key]).startswith(("azureml:", "models:/")):
            # URLs (az://...) and registry references (resolved per job) stay as they are
            flat[key] = str((base_dir / str(flat[key])).resolve())
    if flat.get("scoring_script") and not flat.get("code"):
        flat["scoring_script"] = str((base_dir / str(flat["scoring_script"])).resolve())
    try:
        return JobSpec(**flat)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SpecError(f"{source}: {where}: {msg} (got {err.get('input')!r})") from None


def spec_with_overrides(path: str | Path | None, *, retry: dict[str, Any] | None = None,
                        environment_variables: dict[str, str] | None = None,
                        **overrides: Any) -> JobSpec:
    """A job spec from a deployment YAML at ``path`` (None: from the overrides alone, "the
    command line") and overrides as ``job run``'s flags give them: a setting (not None)
    replaces the file's; ``retry`` (max_retries, timeout) and ``environment_variables`` add
    to the file's ``retry_settings`` and ``environment_variables`` instead of replacing them."""
    if path is None:
        if retry:
            overrides["retry_settings"] = retry
        return spec_from_mapping({}, source="command line",
                                 environment_variables=environment_variables or None,
                                 **overrides)
    spec = load_spec(path, **overrides)
    merged: dict[str, Any] = {}
    if retry:
        merged["retry_settings"] = {**spec.retry_settings.model_dump(), **retry}
    if environment_variables:
        merged["environment_variables"] = {**spec.environment_variables,
                                           **environment_variables}
    if not merged:
        return spec
    return spec_from_mapping({**spec.model_dump(), **merged}, source=str(path))


def _section(value: Any, name: str, allowed: set[str], source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{source}: {name} must be a mapping, not {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise SpecError(f"{source}: unknown key {name}.{key}{_suggest(key, allowed)}")
    return dict(value)


def _model_path(value: Any, source: str) -> str | None:
    """A path, or a registry reference (``azureml:NAME@latest``, ``models:/...``) that
    :func:`batchscore.registry.assets.prepare_spec` resolves when a job is submitted."""
    return model_ref(value, source)


def _suggest(word: str, choices: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
