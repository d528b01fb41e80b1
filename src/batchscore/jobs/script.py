"""The entry-script job kind: existing Azure ML batch scoring scripts, run unchanged.

``init()`` once per worker, ``run(mini_batch)`` (or ``run(mini_batch, mini_batch_context)``)
many times, optional ``shutdown()``. ``run`` gets a list of local file paths (file inputs) or
a pandas DataFrame (tabular inputs) and returns a list or a DataFrame; with ``append_row``
each returned item becomes one line of the output file, in input order.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsspec.core import url_to_fs

from ..errors import InputError, ScriptError
from ..paths import job_code, part_path
from ..storage import Store, local_copy, to_url
from ..workspace import machine_dir
from .kinds import (
    CommitContext,
    ContractError,
    JobKind,
    Scorer,
    TaskResult,
    WorkerConfig,
    worker_name,
)
from .listing import list_inputs
from .outputs import check_output, commit_output
from .plan import PlannedBatch, plan_files, plan_minibatches, read_batch, read_table
from .spec import JobSpec

__all__ = ["MiniBatchContext", "ScriptKind", "check_script", "drop_model_folder", "model_dirs",
           "model_folder_jobs"]


@dataclass
class MiniBatchContext:
    """The second argument of ``run(mini_batch, mini_batch_context)``."""

    minibatch_index: int
    partition_key_value: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None


def check_script(spec: JobSpec) -> Path:
    """Check, without importing it, that the scoring script exists and defines ``run``."""
    path = spec.script_path
    if path is None:
        raise ScriptError("no scoring script given (code_configuration.scoring_script); only "
                          "an MLflow model deploys without one")
    if not path.is_file():
        raise ScriptError(f"scoring script {str(path)!r} does not exist")
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ScriptError(f"scoring script {str(path)!r} has a syntax error: {exc}") from None
    names = {
        node.name for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    } | {
        t.id for node in tree.body if isinstance(node, ast.Assign)
        for t in node.targets if isinstance(t, ast.Name)
    } | {
        alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    if "run" not in names:
        raise ScriptError(f"scoring script {str(path)!r} defines no run(mini_batch) function")
    if spec.model_dir and not spec.model_dir.startswith(("azureml:", "models:/")) \
            and not _exists(spec.model_dir):
        raise ScriptError(f"model folder {spec.model_dir!r} does not exist")
    return path


def _exists(location: str) -> bool:
    fs, path = url_to_fs(to_url(location))
    return bool(fs.exists(path))


CODE_LIMIT = 100 * 1024**2  # scoring code, not models: those go in model.path


def _code_files(spec: JobSpec) -> tuple[Path, list[Path]]:
    """The folder the script's code lives in, and the files of it that the job ships."""
    script = spec.script_path
    assert script is not None
    if not spec.code:
        return script.parent, [script]
    root = Path(spec.code)
    files = [
        p for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                   for part in p.relative_to(root).parts)
    ]
    size = sum(p.stat().st_size for p in files)
    if size > CODE_LIMIT:
        raise ScriptError(
            f"code folder {str(root)!r} holds {size / 1024**2:.0f} MiB, more than the "
            f"{CODE_LIMIT // 1024**2} MiB a job ships to its workers; keep models out of "
            "code_configuration.code (give them as model.path)"
        )
    return root, files


class ScriptKind(JobKind):
    name = "script"
    uses_inputs = False  # each mini-batch names its files

    def validate(self, spec: JobSpec) -> None:
        check_script(spec)
        _code_files(spec)  # refuse code too big to ship before anything is recorded
        if spec.input_format == "sql":
            from ..io import sql  # pandas and pyarrow: only for the inputs that need them

            sql.check_query(spec.options.get("query"))

    def expand_inputs(self, spec: JobSpec, inputs: Sequence[str]) -> list[str]:
        if spec.input_format == "sql":  # one database URL, run as options.query
            from ..io import sql

            if len(inputs) != 1 or not sql.is_database_url(inputs[0]):
                raise InputError(f"input_format sql takes one database URL as input "
                                 f"(sqlite:///..., postgresql://...), got {list(inputs)}")
            return [inputs[0]]
        return list_inputs(inputs)

    def check_output(self, spec: JobSpec, output_url: str, overwrite: bool) -> None:
        name = spec.output_file_name if spec.output_action == "append_row" else None
        check_output(output_url, name, overwrite)

    def plan(self, spec: JobSpec, urls: list[str], system: Store) -> Iterable[PlannedBatch]:
        if spec.input_format == "files":  # a generator: streamed into the state database
            return plan_files(spec, urls)
        return plan_minibatches(spec, urls, system)

    def stage(self, job_id: str, spec: JobSpec, system: Store) -> None:
        """Snapshot the scoring code into the system store (``jobs/<id>/code/``): workers
        load it from there, so remote nodes need no copy of their own, and a resumed job
        runs the code it was submitted with."""
        prefix = job_code(job_id)
        if system.exists(prefix, ".complete"):
            return
        root, files = _code_files(spec)
        for path in files:
            system.put_file(path, f"{prefix}/{path.relative_to(root).as_posix()}")
        system.write_text(f"{prefix}/.complete", "")

    def make_scorer(self, cfg: WorkerConfig) -> Scorer:
        return EntryScript(cfg)

    def commit(self, ctx: CommitContext) -> None:
        name = ctx.spec.output_file_name if ctx.spec.output_action == "append_row" else None
        commit_output(ctx.job_id, ctx.output_url, name, ctx.system, ctx.parts, ctx.staging)


class EntryScript:
    """A user's scoring script, loaded once in this worker process."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        spec = cfg.spec
        self.store = Store(cfg.system_url, "system")
        scratch = Path(cfg.scratch_dir)
        if spec.model_dir:
            os.environ["AZUREML_MODEL_DIR"] = str(model_folder(cfg.job_id, spec.model_dir))
        os.environ["AZUREML_BI_OUTPUT_PATH"] = cfg.staging_dir
        Path(cfg.staging_dir).mkdir(parents=True, exist_ok=True)
        code = Path(local_copy(self.store.url_of(job_code(cfg.job_id)), scratch / "code",
                              recursive=True))
        script = spec.script_path
        assert script is not None
        root = Path(spec.code) if spec.code else script.parent
        self.env: Any = None
        if spec.env_manager == "virtualenv":  # the script runs in its own environment
            from .hooks import hook  # the registry's environments, found by name

            self.env = hook("environment")(list(spec.requirements),
                                           code / script.relative_to(root), code,
                                           list(spec.program_arguments))
            return
        # a parallel job's program_arguments, where Azure passes them (init() argparses them)
        sys.argv = [str(code / script.relative_to(root)), *spec.program_arguments]
        self.module = _load_module(code / script.relative_to(root), code)
        if callable(getattr(self.module, "init", None)):
            self.module.init()
        run = getattr(self.module, "run", None)
        if not callable(run):
            raise ScriptError(f"scoring script {spec.script_path} has no callable run()")
        self.takes_context = _takes_context(run)

    def run(self, idx: int, attempt: int, items: list[Any]) -> TaskResult:
        """One attempt; the copies of its remote input files are removed once it ends (a
        job over a million remote files never holds more than the running mini-batches')."""
        copies = Path(self.cfg.scratch_dir) / "inputs" / f"{idx:08d}-{attempt}-{os.getpid()}"
        try:
            return self._run(idx, attempt, items, copies)
        finally:
            shutil.rmtree(copies, ignore_errors=True)

    def _run(self, idx: int, attempt: int, items: list[Any], copies: Path) -> TaskResult:
        spec = self.cfg.spec
        started = time.time()
        scratch = Path(self.cfg.scratch_dir)
        mini_batch, ctx = _prepare(spec, idx, items, copies)
        if self.env is not None:
            answer = self._run_in_env(mini_batch, ctx, idx, attempt, scratch)
            if not answer.get("ok"):
                if answer.get("contract"):
                    raise ContractError(answer.get("error", ""))
                raise ScriptError(f"run() failed in its environment:\n{answer.get('error')}")
            returned, text = int(answer["returned"]), str(answer["text"])
            part = None
            if spec.output_action == "append_row":
                part = part_path(self.cfg.parts_prefix, idx, attempt, ".txt")
                self.store.write_text(part, text)
            return TaskResult(idx, attempt, worker_name(), started, time.time(), returned,
                              part)
        if self.takes_context:
            result = self.module.run(mini_batch, ctx)
        else:
            result = self.module.run(mini_batch)
        returned, text = _format_rows(result)
        part = None
        if spec.output_action == "append_row":
            part = part_path(self.cfg.parts_prefix, idx, attempt, ".txt")
            self.store.write_text(part, text)
        return TaskResult(idx, attempt, worker_name(), started, time.time(), returned, part)

    def _run_in_env(self, mini_batch: Any, ctx: Any, idx: int, attempt: int,
                    scratch: Path) -> dict[str, Any]:
        """Run the mini-batch in the script's virtualenv: paths as they are; a DataFrame
        through a Parquet file in this worker's scratch, removed once answered."""
        if not _is_frame(mini_batch):
            return dict(self.env.run(list(mini_batch), idx))
        frame = scratch / "frames" / f"{idx:08d}-{attempt}-{os.getpid()}.parquet"
        frame.parent.mkdir(parents=True, exist_ok=True)
        mini_batch.to_parquet(frame, index=False)
        try:
            return dict(self.env.run_frame(frame, idx, dict(ctx.partition_key_value)))
        finally:
            frame.unlink(missing_ok=True)

    def shutdown(self) -> None:
        if self.env is not None:
            self.env.close()
            return
        if callable(getattr(self.module, "shutdown", None)):
            self.module.shutdown()


def model_folder(job_id: str, model: str) -> Path:
    """``AZUREML_MODEL_DIR`` of a job on this machine: a folder holding only the model, as
    ``<folder>/<model's name>`` (a link to a local model, a copy of a remote one), made once
    per job and machine (workers racing to make it keep the first one made)."""
    url = to_url(model).rstrip("/")
    name = url.rsplit("/", 1)[-1] or "model"
    root = model_dirs() / job_id
    if (root / name).exists() or (root / name).is_symlink():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{job_id}-", dir=root.parent))
    try:
        if url.startswith("file://"):
            (build / name).symlink_to(url_to_fs(url)[1])
        else:
            fs, path = url_to_fs(url)
            if fs.isdir(path):
                fs.get(path + "/", str(build / name), recursive=True)
            else:
                fs.get_file(path, str(build / name))
        try:
            build.rename(root)
        except OSError:  # another worker made it first
            if not (root / name).exists():
                raise
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return root


def model_dirs() -> Path:
    """Where this machine keeps each job's ``AZUREML_MODEL_DIR`` (:func:`model_folder`)."""
    return machine_dir("model-dirs")


def drop_model_folder(job_id: str) -> None:
    """Remove job ``job_id``'s model folder on this machine (a copy of a remote model, or a
    link), and what a build of it left half-made; the job made it again if it runs again."""
    root = model_dirs()
    if not root.is_dir():
        return
    for path in [root / job_id, *root.glob(f".{job_id}-*")]:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def model_folder_jobs() -> list[str]:
    """The jobs that have a model folder on this machine."""
    root = model_dirs()
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.is_dir() else []


def _load_module(path: Path, code: Path) -> types.ModuleType:
    code_dir = str(code)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    mod_spec = importlib.util.spec_from_file_location(f"batchscore_user_{path.stem}", path)
    if mod_spec is None or mod_spec.loader is None:
        raise ScriptError(f"cannot import scoring script {path}")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_spec.name] = module
    mod_spec.loader.exec_module(module)
    return module


def _takes_context(run: Any) -> bool:
    try:
        params = [
            p for p in inspect.signature(run).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


def _prepare(spec: JobSpec, idx: int, items: list[Any], copies: Path) -> tuple[Any, Any]:
    """The mini-batch as the script sees it (remote files copied into ``copies``), and its
    context."""
    ctx = MiniBatchContext(minibatch_index=idx)
    if spec.input_format == "files":
        return [local_copy(url, copies) for url in items], ctx
    if spec.partition_keys:
        import pandas as pd

        item = items[0]
        key = item["partition"]
        ctx.partition_key_value = dict(key)
        frames = []
        for url in item["urls"]:
            frame = read_table(spec, url)
            mask = pd.Series(True, index=frame.index)
            for col, value in key.items():
                col_values = frame[col]
                mask &= col_values.isna() if value is None else (col_values == value)
            frames.append(frame[mask])
        return pd.concat(frames, ignore_index=True), ctx
    return read_batch(spec, items[0]), ctx


def _is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame, without importing pandas for a script whose
    mini-batches are files (no DataFrame exists before pandas is loaded)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _format_rows(result: Any) -> tuple[int, str]:
    if _is_frame(result):
        text = result.to_csv(sep=" ", header=False, index=False, lineterminator="\n")
        return len(result), text
    if isinstance(result, list):
        return len(result), "".join(f"{item}\n" for item in result)
    raise ContractError(
        f"run() returned a {type(result).__module__}.{type(result).__qualname__}; "
        "it must return a list (one item per input) or a pandas DataFrame"
    )
