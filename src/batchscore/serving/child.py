"""One serving process of a deployment: the scoring app on sockets it inherits.

Started by the supervisor (:mod:`batchscore.serving.supervisor`) as
``python -m batchscore.serving.child --fd N [--fd M] (--ref NAME/VERSION --workspace W |
--model-dir DIR)``. It never binds a port: it serves on the listening sockets whose file
descriptors it inherits (the deployment's public socket, which the supervisor keeps open,
and a private one on which the supervisor checks that this very process is ready).
SIGTERM makes it stop accepting at once (in the loop turn after any connections asyncio has
just accepted got their transports: closing the server before that drops them unanswered),
then wait until every connection it has accepted has begun its first request (uvicorn's
shutdown closes a connection that has not sent one yet, and the client, which connected
before the swap, would see its request refused; a connection accepted in the moment before
SIGTERM is waited for too, though asyncio hands it to uvicorn a few loop turns later), then
shut down as uvicorn does: finish the requests in flight, then exit. The wait is for that
event, checked every ``POLL_SECONDS``, bounded by the graceful period (a client that connects
and never sends cannot hold a swap longer than that). When its supervisor dies it exits too,
so no orphan keeps serving an old version.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["POLL_SECONDS", "close_servers", "log_line", "log_stamp", "main", "serve_on"]

POLL_SECONDS = 0.02


def _unstarted(connections: object) -> int:
    """How many of uvicorn's open connections have not begun a request yet (no request cycle:
    both of uvicorn's HTTP protocols set ``cycle`` when a request's headers are in)."""
    count = 0
    for conn in list(connections):  # type: ignore[call-overload]
        transport = getattr(conn, "transport", None)
        closing = transport is None or transport.is_closing()
        if getattr(conn, "cycle", object()) is None and not closing:
            count += 1
    return count


def _accept_coroutines(loop: object) -> list[object]:
    """The coroutines of the tasks in which asyncio makes the transport and protocol of each
    connection it has accepted (``_accept_connection2``; asyncio accepts in a batch, then
    hands each connection to such a task), for the tasks not done yet."""
    import asyncio

    coros = (task.get_coro() for task in asyncio.all_tasks(loop))  # type: ignore[arg-type]
    return [c for c in coros if getattr(c, "__qualname__", "").endswith("_accept_connection2")]


def _accepting(loop: object) -> int:
    """How many connections this event loop has accepted but not yet handed to a protocol:
    until its ``_accept_connection2`` task ends, uvicorn does not know the connection (its
    ``connection_made`` comes last)."""
    return len(_accept_coroutines(loop))


def _unmade(loop: object) -> int:
    """How many accepted connections wait for the first step of their ``_accept_connection2``
    task, which makes their transport: until it runs, closing the server would make that step
    fail (CPython's ``Server._attach`` asserts the server is open; asyncio drops the error
    unless in debug mode) and the accepted socket would be closed unanswered."""
    import inspect

    return sum(1 for coro in _accept_coroutines(loop)
               if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED)  # type: ignore[arg-type]


def close_servers(loop: object, servers: list[object], then: Callable[[], None]) -> None:
    """Close ``servers`` (asyncio servers on ``loop``) in a loop turn in which no connection
    they accepted is still waiting for its transport, then call ``then``.

    A SIGTERM can queue the stop before the tasks of a batch of connections that asyncio has
    just accepted; those tasks run first, then the servers close. Closing cancels any accept
    already queued in the same turn, so no connection is accepted after."""
    if _unmade(loop):
        loop.call_soon(close_servers, loop, servers, then)  # type: ignore[attr-defined]
        return
    for server in servers:
        server.close()  # type: ignore[attr-defined]
    then()


def log_stamp(when: float | None = None) -> str:
    """``when`` (default: now) as the deployment's log stamps it, to the millisecond."""
    now = time.time() if when is None else when
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}"


def log_line(message: str) -> None:
    """A line of the deployment's log (the supervisor's output, which its children share),
    stamped to the millisecond: a swap's steps are milliseconds apart."""
    print(f"{log_stamp()} {message}", flush=True)


def _say(message: str) -> None:
    log_line(f"child {os.getpid()}: {message}")


def _draining_server(config: object, limit: float) -> object:
    import asyncio
    import signal

    import uvicorn

    class DrainingServer(uvicorn.Server):
        """On SIGTERM: stop accepting, let accepted connections send, then shut down."""

        loop: asyncio.AbstractEventLoop | None = None
        draining = False

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)

        def handle_exit(self, sig: int, frame: object) -> None:  # type: ignore[override]
            if sig != signal.SIGTERM or self.draining or self.loop is None:
                super().handle_exit(sig, frame)  # type: ignore[arg-type]
                return
            self.draining = True
            loop = self.loop

            def settled(deadline: float, quiet: int = 0, checks: int = 1) -> None:
                # every accepted connection is uvicorn's and has begun its request, seen on
                # two checks in a row (callbacks queued by the first one's have run)
                busy = _accepting(loop) + _unstarted(self.server_state.connections)
                quiet = 0 if busy else quiet + 1
                if quiet >= 2 or loop.time() >= deadline:
                    why = ("every accepted connection has begun its request" if quiet >= 2
                           else f"{busy} accepted connection(s) sent nothing in time")
                    _say(f"{why} ({checks} checks); finishing "
                         f"{len(self.server_state.connections)} connection(s), then exiting")
                    self.should_exit = True
                else:
                    loop.call_later(POLL_SECONDS, settled, deadline, quiet, checks + 1)

            def stopped_accepting() -> None:
                _say(f"SIGTERM: stopped accepting; {_accepting(loop)} connection(s) being "
                     f"accepted, {_unstarted(self.server_state.connections)} not begun, "
                     f"{len(self.server_state.connections)} open")
                settled(loop.time() + limit)

            loop.call_soon_threadsafe(lambda: close_servers(
                loop, list(getattr(self, "servers", [])), stopped_accepting))

    return DrainingServer(config)  # type: ignore[arg-type]


def serve_on(sockets: list[socket.socket], *, ref: str | None = None,
             workspace: str | None = None, model_dir: str | None = None,
             log_requests: bool = True, graceful_seconds: float = 30.0,
             watch_parent: bool = False, tls: dict[str, str] | None = None) -> None:
    """Load the model (a registry ``ref`` or a ``model_dir``) and serve it on ``sockets``."""
    import uvicorn

    from ..state.events import EventWriter
    from ..workspace import open_workspace
    from .anomaly import AnomalyConfig
    from .app import create_app, freeze_startup_heap, load_served_model, model_detector
    from .datalog import InferenceLogger
    from .folder import load_model_folder

    anomalies = AnomalyConfig.from_env()  # bad $BATCHSCORE_ANOMALY_* fail before the load
    ws = open_workspace(workspace) if workspace or ref else None
    if ref is not None:
        assert ws is not None
        served = load_served_model(ws, ref)
    elif model_dir is not None:
        served = load_model_folder(model_dir)
    else:
        raise ValueError("serve_on needs ref or model_dir")
    logger = InferenceLogger(ws.data) if ws is not None and log_requests else None
    # anomaly events go to the state database when there is a workspace, else to the log only
    events = EventWriter(ws.engine) if ws is not None else None
    app = create_app(served, logger=logger, detector=model_detector(served, anomalies),
                     events=events)
    freeze_startup_heap()
    config = uvicorn.Config(app, log_level="warning",
                            timeout_graceful_shutdown=int(graceful_seconds), lifespan="on",
                            **(tls or {}))  # ssl_certfile, ssl_keyfile
    server: uvicorn.Server = _draining_server(config, graceful_seconds)  # type: ignore[assignment]
    if watch_parent:
        parent = os.getppid()

        def watch() -> None:
            while not server.should_exit:
                if os.getppid() != parent:
                    server.should_exit = True
                time.sleep(0.5)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    server.run(sockets=sockets)
    _say(f"stopped after {server.server_state.total_requests} request(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchscore.serving.child")
    parser.add_argument("--fd", type=int, action="append", required=True,
                        help="an inherited listening socket (repeatable)")
    parser.add_argument("--ref", help="registry version, such as diabetes/3")
    parser.add_argument("--workspace", help="workspace folder (for --ref and request logs)")
    parser.add_argument("--model-dir", help="an MLflow model folder instead of --ref")
    parser.add_argument("--no-log", action="store_true", help="do not log requests")
    parser.add_argument("--graceful", type=float, default=30.0,
                        help="seconds to finish requests in flight after SIGTERM")
    parser.add_argument("--error-file", help="where to write why the model cannot be served")
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate")
    parser.add_argument("--ssl-keyfile", help="the key of --ssl-certfile")
    args = parser.parse_args(argv)
    from ..errors import BatchscoreError

    sockets = [socket.socket(fileno=fd) for fd in args.fd]
    try:
        serve_on(sockets, ref=args.ref, workspace=args.workspace, model_dir=args.model_dir,
                 log_requests=not args.no_log, graceful_seconds=args.graceful,
                 watch_parent=True,
                 tls={"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
                 if args.ssl_certfile else None)
    except Exception as exc:
        message = str(exc) if isinstance(exc, BatchscoreError) else (
            f"{type(exc).__name__}: {exc}")
        from ..redact import redact

        message = redact(message)
        if args.error_file:
            Path(args.error_file).write_text(message)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
