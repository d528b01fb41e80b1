"""What runs inside a worker process: load the scoring script once, then score mini-batches.

The Azure ML contract: ``init()`` once per worker, ``run(mini_batch)`` (or
``run(mini_batch, mini_batch_context)``) many times, optional ``shutdown()``. ``run`` gets a
list of local file paths (file inputs) or a pandas DataFrame (tabular inputs) and returns a
list or a DataFrame. The worker writes the mini-batch's part to the system store itself, so a
remote worker needs no shared file system, and sends back only a small result.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import ctypes
import faulthandler
import importlib.util
import inspect
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fsspec.core import url_to_fs

from ..errors import ScriptError
from ..storage import Store
from .plan import read_table
from .spec import JobSpec

__all__ = [
    "ContractError",
    "InitError",
    "MiniBatchContext",
    "TaskResult",
    "WorkerConfig",
    "check_script",
    "run_task",
    "worker_init",
]


class ContractError(Exception):
    """The script broke the run() contract (a wrong return type): the job cannot go on."""


class InitError(Exception):
    """Loading the script or its init() failed in a worker: the job cannot go on."""


@dataclass(frozen=True)
class WorkerConfig:
    job_id: str
    spec: JobSpec
    system_url: str
    log_prefix: str  # relative path in the system store, e.g. jobs/<id>/logs
    staging_dir: str  # local folder given as AZUREML_BI_OUTPUT_PATH
    parts_prefix: str


@dataclass
class MiniBatchContext:
    """The second argument of ``run(mini_batch, mini_batch_context)``."""

    minibatch_index: int
    partition_key_value: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None


@dataclass(frozen=True)
class TaskResult:
    idx: int
    attempt: int
    worker: str
    started_at: float
    finished_at: float
    returned: int
    part: str | None


_state: dict[str, Any] = {}


def check_script(spec: JobSpec) -> Path:
    """Check, without importing it, that the scoring script exists and defines ``run``."""
    path = spec.script_path
    if path is None:
        raise ScriptError("no scoring script given (code_configuration.scoring_script)")
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
    if spec.model_dir and not Path(spec.model_dir).exists():
        raise ScriptError(f"model folder {spec.model_dir!r} does not exist")
    return path


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the process that started it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_init(cfg: WorkerConfig) -> None:
    """Pebble initializer: never raises (an error is kept and reported by the first task)."""
    _die_with_parent()
    _state.clear()
    _state["cfg"] = cfg
    try:
        _redirect_output(cfg)
        spec = cfg.spec
        os.environ.update(spec.environment_variables)
        if spec.model_dir:
            os.environ["AZUREML_MODEL_DIR"] = str(Path(spec.model_dir).parent)
        os.environ["AZUREML_BI_OUTPUT_PATH"] = cfg.staging_dir
        Path(cfg.staging_dir).mkdir(parents=True, exist_ok=True)
        logging.basicConfig(
            level=spec.logging_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
            force=True,
        )
        module = _load_module(spec)
        _state["module"] = module
        if callable(getattr(module, "init", None)):
            module.init()
        run = getattr(module, "run", None)
        if not callable(run):
            raise ScriptError(f"scoring script {spec.script_path} has no callable run()")
        _state["takes_context"] = _takes_context(run)
        atexit.register(_shutdown)
        signal.signal(signal.SIGTERM, _on_term)
    except BaseException:
        _state["init_error"] = traceback.format_exc()
        sys.stderr.write(_state["init_error"])


def _load_module(spec: JobSpec) -> types.ModuleType:
    path = spec.script_path
    assert path is not None
    code_dir = str(Path(spec.code) if spec.code else path.parent)
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


def _redirect_output(cfg: WorkerConfig) -> None:
    """Send this process's stdout and stderr (C level too) to its own log files."""
    store = Store(cfg.system_url, "system")
    name = f"worker-{socket.gethostname()}-{os.getpid()}"
    if store.is_local:
        folder = store.local_path(cfg.log_prefix, "workers")
    else:
        folder = Path(tempfile.mkdtemp(prefix="batchscore-logs-"))
    folder.mkdir(parents=True, exist_ok=True)
    _state["log_files"] = []
    for fd, suffix, stream in ((1, "stdout", sys.stdout), (2, "stderr", sys.stderr)):
        path = folder / f"{name}.{suffix}.txt"
        with contextlib.suppress(Exception):
            stream.flush()
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
        _state["log_files"].append((path, f"{cfg.log_prefix}/workers/{path.name}"))
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    # A crash in native code (a segfault in a model library) leaves its Python traceback here.
    faulthandler.enable(file=sys.stderr, all_threads=True)
    _state["store"] = store


def _sync_logs() -> None:
    """Remote system store: upload this worker's log files (local ones are written in place)."""
    store: Store | None = _state.get("store")
    if store is None or store.is_local:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    for local, rel in _state.get("log_files", []):
        with contextlib.suppress(Exception):
            store.put_file(local, rel)


def _shutdown() -> None:
    module = _state.pop("module", None)
    if module is not None and callable(getattr(module, "shutdown", None)):
        try:
            module.shutdown()
        except Exception:
            traceback.print_exc()
    _sync_logs()


def _on_term(signum: int, frame: Any) -> None:
    _shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


def _prepare(spec: JobSpec, idx: int, items: list[Any], scratch: Path) -> tuple[Any, Any]:
    """The mini-batch as the script sees it, and its context."""
    ctx = MiniBatchContext(minibatch_index=idx)
    if spec.input_format == "files":
        return [_local_copy(url, scratch) for url in items], ctx
    if spec.partition_keys:
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
    item = items[0]
    return read_table(spec, item["url"], item["start"], item["stop"]), ctx


def _local_copy(url: str, scratch: Path) -> str:
    if url.startswith("file://"):
        return url_to_fs(url)[1]
    fs, path = url_to_fs(url)
    target = scratch / "inputs" / path.lstrip("/")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(target))
    return str(target)


def _format_rows(result: Any) -> tuple[int, str]:
    if isinstance(result, pd.DataFrame):
        text = result.to_csv(sep=" ", header=False, index=False, lineterminator="\n")
        return len(result), text
    if isinstance(result, list):
        return len(result), "".join(f"{item}\n" for item in result)
    raise ContractError(
        f"run() returned a {type(result).__module__}.{type(result).__qualname__}; "
        "it must return a list (one item per input) or a pandas DataFrame"
    )


def run_task(idx: int, attempt: int, items: list[Any]) -> TaskResult:
    """Score one mini-batch (called through the executor in a worker process)."""
    if "init_error" in _state:
        raise InitError(_state["init_error"])
    cfg: WorkerConfig = _state["cfg"]
    spec = cfg.spec
    module = _state["module"]
    started = time.time()
    scratch = Path(cfg.staging_dir).parent / "scratch"
    mini_batch, ctx = _prepare(spec, idx, items, scratch)
    result = module.run(mini_batch, ctx) if _state["takes_context"] else module.run(mini_batch)
    returned, text = _format_rows(result)
    part = None
    if spec.output_action == "append_row":
        part = f"{cfg.parts_prefix}/{idx:08d}-{attempt}.txt"
        _state["store"].write_text(part, text)
    finished = time.time()
    _sync_logs()
    return TaskResult(idx, attempt, worker_name(), started, finished, returned, part)
