"""Environments: a deployment's requirements as a cached virtualenv its workers run in.

With ``env_manager: virtualenv`` (``--env-manager virtualenv``, MLflow's name), the
requirements of the deployment's ``environment`` (the pip section and the pip-installable
packages of its ``conda_file``) or of its MLflow model (``requirements.txt``) are installed
into a virtualenv kept under ``~/.cache/batchscore/envs/<hash of the requirements and of
this Python>`` (``$BATCHSCORE_ENV_CACHE`` elsewhere), built once with ``uv`` when it is
installed, else with ``venv`` and ``pip``. The Python is this machine's (a conda file asking
for another version is said so in the job's log, and ignored).

What a deployment's ``environment`` asks for is read with its spec
(:mod:`batchscore.jobs.environment`); the environment is built here when a job is submitted
(:func:`batchscore.registry.assets.prepare_spec`) and started in each worker through the
engine's ``environment`` hook (:func:`start_env`, :mod:`batchscore.jobs.hooks`).

The boundary: the driver and each worker stay in batchscore's environment (database, stores,
scheduling, output parts); each worker starts one child process in the virtualenv that runs
:mod:`batchscore.registry.env_runner` as a plain file (it imports nothing of batchscore, only
the standard library and what the user's script imports) and calls the script's ``init()``,
``run()`` and ``shutdown()`` for it over a pipe. Mini-batches of files travel as paths,
DataFrames as a Parquet file in the worker's scratch (:meth:`EnvProcess.run_frame`);
``run()``'s rows come back as the output text.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError, ScriptError

__all__ = ["ENV_MANAGERS", "EnvProcess", "build_env", "mlflow_requirements", "start_env"]

ENV_MANAGERS = ("local", "virtualenv")
RUNNER = Path(__file__).with_name("env_runner.py")


def mlflow_requirements(model_dir: Path) -> list[str]:
    """An MLflow model's ``requirements.txt`` (comments and pip options left out)."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "-"))]


def _cache() -> Path:
    return Path(os.environ.get("BATCHSCORE_ENV_CACHE")
                or Path.home() / ".cache" / "batchscore" / "envs")


def env_key(requirements: list[str]) -> str:
    payload = json.dumps([sys.version, sorted(requirements)])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else shutil.which("uv")


def _run(cmd: list[str], what: str) -> None:
    # argv, no shell: uv/pip with requirements from an admin's deployment (never an operator's)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()[-2000:]
        raise InputError(f"the environment cannot be built ({what} failed):\n{message}")


def build_env(requirements: list[str]) -> Path:
    """The Python of the cached virtualenv holding ``requirements`` (built now if needed;
    concurrent builders wait for the first)."""
    root = _cache() / env_key(requirements)
    python = root / "bin" / "python"
    done = root / ".complete"
    if done.is_file():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return python
        shutil.rmtree(root, ignore_errors=True)  # a build that died half-way
        uv = _uv()
        reqs = root.with_name(f"{root.name}.requirements.txt")
        reqs.write_text("".join(f"{r}\n" for r in requirements))
        try:
            if uv:
                _run([uv, "venv", "--quiet", "--python", sys.executable, str(root)], "uv venv")
                if requirements:
                    _run([uv, "pip", "install", "--quiet", "--python", str(python), "-r",
                          str(reqs)], "uv pip install")
            else:
                _run([sys.executable, "-m", "venv", str(root)], "python -m venv")
                if requirements:
                    _run([str(python), "-m", "pip", "install", "--quiet", "-r", str(reqs)],
                         "pip install")
        except InputError:
            shutil.rmtree(root, ignore_errors=True)
            raise
        done.write_text(json.dumps(requirements))
    return python


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


class EnvProcess:
    """The user's script loaded in a child process of the virtualenv's Python."""

    def __init__(self, python: Path, script: Path, code: Path, argv: list[str]) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # argv, no shell: the env's Python running our runner on the admin's entry script
        self.proc = subprocess.Popen(  # nosec B603
            [str(python), str(RUNNER), str(to_child_r), str(from_child_w), str(script),
             str(code), *argv],
            pass_fds=(to_child_r, from_child_w), preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        answer = self._receive()
        if not answer.get("ok"):
            raise ScriptError(f"loading the scoring script in its environment ({python}) "
                              f"failed:\n{answer.get('error', '')}")

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        os.write(self._to_child, struct.pack(">I", len(data)) + data)

    def _read(self, n: int) -> bytes:
        chunks = b""
        while len(chunks) < n:
            part = os.read(self._from_child, n - len(chunks))
            if not part:
                code = self.proc.wait()
                raise ScriptError(f"the scoring script's process in its environment exited "
                                  f"(code {code})")
            chunks += part
        return chunks

    def _receive(self) -> dict[str, Any]:
        (size,) = struct.unpack(">I", self._read(4))
        return json.loads(self._read(size))  # type: ignore[no-any-return]

    def run(self, items: list[str], index: int) -> dict[str, Any]:
        self._send({"op": "run", "items": items, "index": index})
        return self._receive()

    def run_frame(self, frame: Path, index: int, partition: dict[str, Any]) -> dict[str, Any]:
        """A DataFrame mini-batch, written as Parquet at ``frame`` (the worker's scratch):
        the environment reads it with its own pandas and pyarrow."""
        self._send({"op": "run", "frame": str(frame), "index": index,
                    "partition": partition})
        return self._receive()

    def close(self) -> None:
        try:
            self._send({"op": "shutdown"})
            self._receive()
        except (OSError, ScriptError, struct.error, ValueError):
            pass
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_env(requirements: list[str], script: Path, code: Path, argv: list[str]
              ) -> EnvProcess:
    """The ``environment`` hook of :mod:`batchscore.jobs.hooks`: the user's script loaded in
    a child process of the virtualenv holding ``requirements`` (built first if needed)."""
    return EnvProcess(build_env(requirements), script, code, argv)
