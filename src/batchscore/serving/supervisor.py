"""Long-lived online deployments whose model version can be swapped without losing a request.

A deployment is a **supervisor** process that owns the listening socket and runs the scoring
app (:mod:`batchscore.serving.app`) in a **child** process that serves on that inherited
socket (:mod:`batchscore.serving.child`). To swap versions the supervisor starts a new child
on the *same* socket, checks on a private port of that child that it is ready (``GET /ping``
and the expected ``GET /version``), and only then sends the old child SIGTERM: uvicorn stops
accepting and finishes the requests in flight, while the new child keeps accepting from the
same kernel queue. The socket never closes in between, so no connection is refused and no
request in flight is lost. (Two separate listeners with SO_REUSEPORT would lose the
connections queued on the one that closes.) A child that dies is restarted; a child whose
supervisor dies exits.

The state of a running deployment is a JSON file ``<workspace>/deployments/<name>.<env>.json``
(mode 0600: it holds the key of the supervisor's control channel, a
:mod:`multiprocessing.connection` listener on 127.0.0.1) beside its log
``<name>.<env>.log``. ``env`` is ``production`` or ``staging``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import DeploymentError
from ..redact import redact
from ..tlsconfig import ServerTLS, pinned_context
from ..workspace import Workspace
from .child import log_line

__all__ = [
    "ENVIRONMENTS",
    "Deployment",
    "DeploymentError",
    "get_deployment",
    "list_deployments",
    "start_deployment",
    "stop_deployment",
    "swap_deployment",
]

ENVIRONMENTS = ("production", "staging")
STATE_DIR = "deployments"
_launched: dict[int, subprocess.Popen[bytes]] = {}  # supervisors this process started


@dataclass(frozen=True)
class Deployment:
    """A running deployment, as its state file records it."""

    name: str
    env: str
    host: str
    port: int
    version: int
    pid: int
    child_pid: int
    started_at: float
    log: str
    tls: bool = False  # HTTPS (the url says so; not a key of to_dict)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # nosec B104  # compared
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("tls")
        return {**fields, "url": self.url}


# -- state files ------------------------------------------------------------------------


def _state_dir(root: Path) -> Path:
    return root / STATE_DIR


def _stem(name: str, env: str) -> str:
    return f"{quote(name, safe='')}.{env}"


def _state_path(root: Path, name: str, env: str) -> Path:
    return _state_dir(root) / f"{_stem(name, env)}.json"


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _alive(pid: int, create_time: float | None = None) -> bool:
    import psutil

    proc = _launched.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(p.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def _deployment(state: dict[str, Any]) -> Deployment:
    return Deployment(name=state["name"], env=state["env"], host=state["host"],
                      port=int(state["port"]), version=int(state["version"]),
                      pid=int(state["pid"]), child_pid=int(state["child_pid"]),
                      started_at=float(state["started_at"]), log=state["log"],
                      tls=bool(state.get("tls")))


def _check_env(env: str) -> None:
    if env not in ENVIRONMENTS:
        raise DeploymentError(f"environment {env!r} is not one of {', '.join(ENVIRONMENTS)}")


def _running_state(ws: Workspace, name: str, env: str) -> dict[str, Any] | None:
    _check_env(env)
    path = _state_path(ws.settings.root, name, env)
    state = _read_state(path)
    if state is None:
        return None
    if not _alive(int(state["pid"]), state.get("create_time")):
        path.unlink(missing_ok=True)  # a supervisor that was killed left it behind
        return None
    return state if state.get("status") == "ready" else None


def get_deployment(ws: Workspace, name: str, env: str = "production") -> Deployment | None:
    """The running ``env`` deployment of model ``name``, or None."""
    state = _running_state(ws, name, env)
    return _deployment(state) if state else None


def list_deployments(ws: Workspace) -> list[Deployment]:
    """Every running deployment of the workspace, by name and environment."""
    found = []
    for path in sorted(_state_dir(ws.settings.root).glob("*.json")):
        state = _read_state(path)
        if state and "name" in state and "env" in state:
            running = get_deployment(ws, state["name"], state["env"])
            if running is not None:
                found.append(running)
    return found


# -- what the CLI and the release pipeline call ----------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise DeploymentError(f"port {port} is not a TCP port (0-65535; 0 picks a free one)")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise DeploymentError(f"host {host!r} cannot be resolved: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        taken = " (the port is taken)" if exc.errno == errno.EADDRINUSE else ""
        raise DeploymentError(f"cannot listen on {host}:{port}: {exc.strerror}{taken}") from None
    sock.set_inheritable(True)
    return sock


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def start_deployment(ws: Workspace, name: str, version: int, *, env: str = "production",
                     host: str = "127.0.0.1", port: int = 8080, log_requests: bool = True,
                     timeout: float = 120.0, graceful: float = 30.0,
                     tls: ServerTLS | None = None) -> Deployment:
    """Start a supervisor serving ``name/version`` on ``host:port`` (0: a free port) in the
    background, and return once it answers; the socket is bound here, so a port that is taken
    fails at once. With ``tls`` every child serves HTTPS with that certificate."""
    _check_env(env)
    existing = get_deployment(ws, name, env)
    if existing is not None:
        raise DeploymentError(
            f"model {name!r} already has a running {env} deployment: version "
            f"{existing.version} at {existing.url} (pid {existing.pid}); release a new version "
            f"into it with `batchscore model release`, or stop it with `batchscore model "
            f"undeploy {name}`")
    sock = _bind(host, port)
    root = ws.settings.root
    _state_dir(root).mkdir(parents=True, exist_ok=True)
    path = _state_path(root, name, env)
    path.unlink(missing_ok=True)
    log_path = path.with_suffix(".log")
    cmd = [sys.executable, "-m", "batchscore.serving.supervisor", "--workspace", str(root),
           "--name", name, "--env", env, "--version", str(version), "--fd", str(sock.fileno()),
           "--host", host, "--port", str(sock.getsockname()[1]), "--timeout", str(timeout),
           "--graceful", str(graceful), *([] if log_requests else ["--no-log"]),
           *(tls.argv() if tls else [])]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL,  # nosec B603  # argv: our module
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sock.close()
    _launched[proc.pid] = proc
    deadline = time.monotonic() + timeout + 10
    while True:
        state = _read_state(path)
        if state is not None and state.get("pid") == proc.pid:
            if state.get("status") == "ready":
                return _deployment(state)
            if state.get("status") == "failed":
                proc.wait(30)
                path.unlink(missing_ok=True)
                raise DeploymentError(f"cannot deploy {name}/{version} ({env}): {state['error']}")
        if proc.poll() is not None:
            raise DeploymentError(f"cannot deploy {name}/{version} ({env}): the supervisor "
                                  f"exited with code {proc.returncode}: {_tail(log_path)}")
        if time.monotonic() > deadline:
            _kill_group(proc.pid)
            raise DeploymentError(f"cannot deploy {name}/{version} ({env}): not ready after "
                                  f"{timeout:g} s; see {log_path}")
        time.sleep(0.1)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)  # the supervisor leads its own session
    proc = _launched.get(pid)
    if proc is not None:
        proc.wait(10)


def stop_deployment(ws: Workspace, name: str, env: str = "production",
                    timeout: float = 60.0) -> Deployment:
    """Stop the running ``env`` deployment of ``name``: its child finishes the requests in
    flight, then the socket closes."""
    state = _running_state(ws, name, env)
    if state is None:
        raise DeploymentError(f"model {name!r} has no running {env} deployment")
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid, state.get("create_time")):
        if time.monotonic() > deadline:
            _kill_group(pid)
            break
        time.sleep(0.1)
    _state_path(ws.settings.root, name, env).unlink(missing_ok=True)
    return _deployment(state)


def swap_deployment(ws: Workspace, name: str, version: int, env: str = "production",
                    timeout: float = 180.0) -> Deployment:
    """Make the running ``env`` deployment of ``name`` serve ``version``, losing no request.
    When the new version does not become ready the old one keeps serving and this raises."""
    from multiprocessing.connection import AuthenticationError, Client

    state = _running_state(ws, name, env)
    if state is None:
        raise DeploymentError(f"model {name!r} has no running {env} deployment to swap")
    try:
        conn = Client(("127.0.0.1", int(state["control_port"])),
                      authkey=bytes.fromhex(state["authkey"]))
    except (OSError, AuthenticationError) as exc:
        raise DeploymentError(f"cannot reach the supervisor of {name} ({env}, pid "
                              f"{state['pid']}): {exc}") from None
    with conn:
        conn.send({"op": "swap", "version": int(version)})
        if not conn.poll(timeout):
            raise DeploymentError(f"the supervisor of {name} ({env}) did not answer the swap "
                                  f"to version {version} within {timeout:g} s")
        reply = conn.recv()
    if not reply.get("ok"):
        raise DeploymentError(f"swap of {name} ({env}) to version {version} failed; version "
                              f"{state['version']} keeps serving: {reply.get('error')}")
    return _deployment(reply["state"])


# -- the supervisor process ------------------------------------------------------------------


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    version: int
    private_port: int


CONTROL_TIMEOUT = 10.0  # seconds a control connection may take to authenticate and ask


def serve_control(listener: socket.socket, authkey: bytes,
                  handle: Callable[[Any], dict[str, Any]], stop: threading.Event,
                  timeout: float = CONTROL_TIMEOUT) -> None:
    """Answer control connections on ``listener``, each in its own thread: it must
    authenticate (``multiprocessing.connection``'s HMAC challenge with ``authkey``) and send
    its request within ``timeout`` seconds, or it is closed; an idle or slow connection never
    holds up another. ``handle`` answers an authenticated request."""
    listener.settimeout(0.5)  # to see ``stop``
    while not stop.is_set():
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            if stop.is_set():
                return
            continue
        threading.Thread(target=_control_connection, args=(sock, authkey, handle, timeout),
                         name="control-connection", daemon=True).start()


def _control_connection(sock: socket.socket, authkey: bytes,
                        handle: Callable[[Any], dict[str, Any]], timeout: float) -> None:
    import struct
    from multiprocessing.connection import (
        AuthenticationError,
        Connection,
        answer_challenge,
        deliver_challenge,
    )

    sock.setblocking(True)
    limit = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)  # reads of a blocking fd
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
    conn = Connection(sock.detach())
    with conn:
        try:
            deliver_challenge(conn, authkey)
            answer_challenge(conn, authkey)
            request = conn.recv()  # only after the HMAC handshake with our key
        except (OSError, EOFError, AuthenticationError, ValueError):
            return  # idle, slow, closed, or not one of ours
        reply = handle(request)
        with contextlib.suppress(OSError):
            conn.send(reply)


class _Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.root = Path(args.workspace)
        self.name, self.env, self.version = args.name, args.env, int(args.version)
        self.host, self.port = args.host, int(args.port)
        self.timeout, self.graceful = float(args.timeout), float(args.graceful)
        self.log_requests = not args.no_log
        self.tls = (ServerTLS(args.ssl_certfile, args.ssl_keyfile) if args.ssl_certfile
                    else None)
        self.sock = socket.socket(fileno=args.fd)
        self.path = _state_path(self.root, self.name, self.env)
        self.authkey = secrets.token_bytes(32)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.child: _Child | None = None
        self.started_at = time.time()
        self.control_port = 0

    def say(self, message: str) -> None:
        log_line(redact(f"supervisor {self.name} ({self.env}): {message}"))

    def write_state(self, status: str, error: str | None = None) -> None:
        import psutil

        _write_json(self.path, {
            "name": self.name, "env": self.env, "host": self.host, "port": self.port,
            "version": self.version, "pid": os.getpid(),
            "create_time": psutil.Process().create_time(),
            "child_pid": self.child.proc.pid if self.child else 0,
            "control_port": self.control_port, "authkey": self.authkey.hex(),
            "started_at": self.started_at, "status": status, "error": error,
            "log": str(self.path.with_suffix(".log")), "tls": self.tls is not None})

    def start_child(self, version: int) -> _Child:
        import httpx

        private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        private.bind(("127.0.0.1", 0))
        private.listen(64)
        error_file = self.path.with_suffix(f".error-{time.time_ns()}")
        cmd = [sys.executable, "-m", "batchscore.serving.child", "--fd", str(self.sock.fileno()),
               "--fd", str(private.fileno()), "--ref", f"{self.name}/{version}",
               "--workspace", str(self.root), "--graceful", str(self.graceful),
               "--error-file", str(error_file), *([] if self.log_requests else ["--no-log"]),
               *(self.tls.argv() if self.tls else [])]
        proc = subprocess.Popen(cmd, pass_fds=(self.sock.fileno(), private.fileno()),  # nosec B603  # argv: our module
                                stdin=subprocess.DEVNULL)
        port = private.getsockname()[1]
        private.close()
        self.say(f"started child {proc.pid} for version {version}")
        expected = {"model": self.name, "version": str(version)}
        deadline = time.monotonic() + self.timeout
        try:
            # the private port serves this child's certificate: trust exactly that one
            verify = pinned_context(self.tls.certfile) if self.tls else True
            with httpx.Client(timeout=5.0, verify=verify) as http:
                while True:
                    if proc.poll() is not None:
                        reason = (error_file.read_text() if error_file.exists() else
                                  f"it exited with code {proc.returncode}")
                        raise DeploymentError(f"version {version} did not start: {reason}")
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        base = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
                        if http.get(f"{base}/ping").status_code == 200:
                            answer = http.get(f"{base}/version").json()
                            if answer != expected:
                                raise DeploymentError(
                                    f"the new serving process answers /version with {answer}, "
                                    f"expected {expected}")
                            self.say(f"child {proc.pid} serves version {version}")
                            return _Child(proc, version, port)
                    if time.monotonic() > deadline:
                        raise DeploymentError(f"version {version} was not ready after "
                                              f"{self.timeout:g} s")
                    time.sleep(0.1)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise
        finally:
            error_file.unlink(missing_ok=True)

    def drain(self, child: _Child) -> None:
        """SIGTERM: uvicorn stops accepting and finishes the requests in flight."""
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(self.graceful + 10)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        self.say(f"child {child.proc.pid} (version {child.version}) exited")

    def swap(self, version: int) -> dict[str, Any]:
        with self.lock:
            old = self.child
            assert old is not None
            new = self.start_child(version)  # raises: the old child keeps serving
            self.child, self.version = new, version
            self.write_state("ready")
            self.drain(old)
            return _read_state(self.path) or {}

    def handle(self, request: Any) -> dict[str, Any]:
        """One control request (after authentication): a swap, answered with the state."""
        try:
            if not isinstance(request, dict) or request.get("op") != "swap":
                raise DeploymentError(f"unknown control request {str(request)[:100]!r}")
            return {"ok": True, "state": self.swap(int(request["version"]))}
        except Exception as exc:
            self.say(f"swap refused: {exc}")
            return {"ok": False, "error": str(exc)}

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        listener = socket.create_server(("127.0.0.1", 0))
        self.control_port = int(listener.getsockname()[1])
        try:
            self.child = self.start_child(self.version)
        except Exception as exc:
            self.say(f"cannot start: {exc}")
            self.write_state("failed", error=str(exc))
            return 1
        self.write_state("ready")
        self.say(f"serving version {self.version} on {self.host}:{self.port}")
        threading.Thread(target=serve_control, args=(listener, self.authkey, self.handle,
                                                     self.stop), name="control",
                         daemon=True).start()
        while not self.stop.wait(0.5):
            with self.lock:
                child = self.child
                if child is None or child.proc.poll() is None or self.stop.is_set():
                    continue
                self.say(f"child {child.proc.pid} exited with code {child.proc.returncode}; "
                         f"restarting version {child.version}")
                try:
                    self.child = self.start_child(child.version)
                    self.write_state("ready")
                except Exception as exc:
                    self.say(f"restart failed: {exc}")
                    self.stop.wait(5)
        with self.lock:
            if self.child is not None:
                self.drain(self.child)
        self.path.unlink(missing_ok=True)
        self.sock.close()
        self.say("stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchscore.serving.supervisor")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--env", required=True, choices=ENVIRONMENTS)
    parser.add_argument("--version", required=True, type=int)
    parser.add_argument("--fd", required=True, type=int, help="the inherited listening socket")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--graceful", type=float, default=30.0)
    parser.add_argument("--no-log", action="store_true")
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate")
    parser.add_argument("--ssl-keyfile", help="the key of --ssl-certfile")
    return _Supervisor(parser.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
