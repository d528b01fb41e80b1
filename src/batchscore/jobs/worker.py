"""What runs inside a worker process: set the process up once, then score mini-batches.

The worker's job kind makes its :class:`~batchscore.jobs.kinds.Scorer` once (an entry
script's ``init()``, a video job's network); each task calls ``scorer.run``. The scorer writes
its mini-batch's part to the system store itself, so a remote worker needs no shared file
system, and sends back only a small result. Everything the process prints goes to its own
log files in the job's logs.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import importlib
import logging
import multiprocessing.connection
import multiprocessing.util
import os
import signal
import socket
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

from .. import telemetry
from ..paths import workers_dir
from ..storage import Store
from .kinds import TaskResult, WorkerConfig, get_kind, worker_name
from .threads import limit_threads

__all__ = ["InitError", "run_task", "worker_init"]


class InitError(Exception):
    """Setting the worker up (loading the script or model) failed: the job cannot go on.
    Raised by :func:`run_task`, turned into a failed job by the executor."""


_state: dict[str, Any] = {}


def _die_with_parent() -> None:
    """Exit when the process that runs this worker's job dies (``kill -9`` of the runner).

    A worker that a fork server forked for its runner (the service's jobs) watches the runner
    through multiprocessing's sentinel of it (a pipe the runner holds open): its parent in
    the process tree is the fork server, which outlives the runner as long as any of its
    children lives. It also exits when the fork server dies (killed on its own, say by the
    OOM killer): the runner then reads its workers' ends from the server and counts them
    dead (their mini-batches are retried, on workers of a new server), so they must not run
    on unseen. Any other worker watches its parent's pid: a watcher thread rather than
    Linux's PR_SET_PDEATHSIG, which fires when the *thread* that forked the worker ends, and
    pebble forks replacement workers from its manager thread, which ends before the pool
    stops its workers.
    """
    runner = multiprocessing.parent_process()
    parent = os.getppid()
    # a fork server's child: the runner's end too (the wait returns at once), beside the
    # server's; any other worker: its parent's end alone (an empty wait is a half-second pause)
    sentinels = [runner.sentinel] if runner is not None and runner.pid != parent else []

    def watch() -> None:
        while os.getppid() == parent:
            if multiprocessing.connection.wait(sentinels, timeout=0.5):
                break
        os._exit(1)

    threading.Thread(target=watch, name="batchscore-parent-watch", daemon=True).start()


def _forget_inherited_connections() -> None:
    """A forked worker must neither use nor close its parent's pooled database connections.

    The local executor forks workers from the runner, which holds open connections: the
    state database's and, once a model was resolved, MLflow's registry database's. A child
    that runs a query on one of them, or closes it when it is collected, breaks the
    parent's session on a server database (PostgreSQL: ``DuplicatePreparedStatement``, or a
    connection terminated under the parent). SQLAlchemy's remedy for fork: every engine
    inherited gets a fresh pool here, leaving the parent's connections alone. The engines
    are the ones :func:`batchscore.state.db.connected_engines` tracked as they connected
    (the runner asks for them before it forks, so that any one-time search is done once,
    there); without batchscore's state module, every engine the garbage collector finds."""
    db = sys.modules.get("batchscore.state.db")
    if db is not None:
        engines = db.connected_engines()
    else:
        import gc

        engine_type = getattr(sys.modules.get("sqlalchemy.engine"), "Engine", None)
        if engine_type is None:  # nothing imported SQLAlchemy: no engine to forget
            return
        engines = [obj for obj in gc.get_objects() if isinstance(obj, engine_type)]
    for engine in engines:
        with contextlib.suppress(Exception):
            engine.dispose(close=False)


# batchscore's readers, with pandas, pyarrow and NumPy. The engine's own modules load them only
# where rows are read (a command that runs no job skips them: 0.9 s of `job list`), so they
# are loaded here: by a runner before it forks its workers (each would otherwise import them
# itself, for a scoring script that uses pandas over files too), and by every worker before
# its thread pools are limited (limits apply in place to the libraries loaded; one loaded
# later reads the variables instead, which OpenBLAS caps at the CPU count).
READERS = ("batchscore.io.files", "batchscore.io.sql")


def load_readers() -> None:
    """Import :data:`READERS` (at once where they are loaded already)."""
    for name in READERS:
        importlib.import_module(name)


def worker_init(cfg: WorkerConfig, environ: dict[str, str] | None = None) -> None:
    """Pool initializer: never raises (an error is kept and reported by the first task).

    ``environ``: the runner's environment, for a worker that did not inherit it (one forked
    by a fork server has the server's)."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
        tempfile.tempdir = None  # $TMPDIR's folder, found again from this environment
    _die_with_parent()
    _forget_inherited_connections()
    _state.clear()
    _state["cfg"] = cfg
    try:
        _redirect_output(cfg)
        spec = cfg.spec
        os.environ.update(spec.environment_variables)
        logging.basicConfig(
            level=spec.logging_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
            force=True,
        )
        load_readers()  # before the limits: a spawned worker has not loaded them yet
        limit_threads(spec.workers)  # W workers share the machine's CPUs (jobs/threads.py)
        _state["scorer"] = get_kind(spec.kind).make_scorer(cfg)
        # However the worker ends: its pool closes its channel (a multiprocessing child runs
        # its finalizers, not atexit), it is terminated (SIGTERM), or the interpreter exits.
        multiprocessing.util.Finalize(None, _shutdown, exitpriority=100)
        atexit.register(_shutdown)
        signal.signal(signal.SIGTERM, _on_term)
    except BaseException:
        _state["init_error"] = traceback.format_exc()
        sys.stderr.write(_state["init_error"])


def run_task(idx: int, attempt: int, items: list[Any]) -> TaskResult:
    """Score one mini-batch (called through the executor in a worker process)."""
    if "init_error" in _state:
        raise InitError(_state["init_error"])
    try:
        with telemetry.worker_span(_state["cfg"].job_id, idx, attempt, worker_name()):
            return _state["scorer"].run(idx, attempt, items)  # type: ignore[no-any-return]
    except BaseException as exc:
        exc.batchscore_worker = worker_name()  # type: ignore[attr-defined]  # pickled along
        raise
    finally:
        _sync_logs()


def _redirect_output(cfg: WorkerConfig) -> None:
    """Send this process's stdout and stderr (C level too) to its own log files."""
    store = Store(cfg.system_url, "system")
    name = f"worker-{socket.gethostname()}-{os.getpid()}"
    if store.is_local:
        folder = store.local_path(workers_dir(cfg.log_prefix))
    else:
        Path(cfg.scratch_dir).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="logs-", dir=cfg.scratch_dir))
    folder.mkdir(parents=True, exist_ok=True)
    _state["log_files"] = []
    for fd, suffix, stream in ((1, "stdout", sys.stdout), (2, "stderr", sys.stderr)):
        path = folder / f"{name}.{suffix}.txt"
        with contextlib.suppress(Exception):
            stream.flush()
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
        _state["log_files"].append((path, f"{workers_dir(cfg.log_prefix)}/{path.name}"))
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
    scorer = _state.pop("scorer", None)
    if scorer is not None:
        try:
            scorer.shutdown()
        except Exception:
            traceback.print_exc()
    _sync_logs()
    telemetry.flush()


def _on_term(signum: int, frame: Any) -> None:
    _shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)
