"""The deployment supervisor's control port (issue 14, Medium): one idle TCP connection used
to block every swap; connections are now served each in its own thread, with a timeout for
authenticating and asking."""

from __future__ import annotations

import secrets
import socket
import threading
from multiprocessing.connection import AuthenticationError, Client
from typing import Any

import pytest

from batchscore.serving.supervisor import serve_control


@pytest.fixture
def control() -> Any:
    listener = socket.create_server(("127.0.0.1", 0))
    key = secrets.token_bytes(32)
    stop = threading.Event()
    seen: list[Any] = []

    def handle(request: Any) -> dict[str, Any]:
        seen.append(request)
        return {"ok": True, "echo": request}

    thread = threading.Thread(target=serve_control, args=(listener, key, handle, stop, 30.0),
                              daemon=True)
    thread.start()
    yield listener.getsockname(), key, seen
    stop.set()
    thread.join(10)
    listener.close()


def test_an_idle_connection_does_not_block_a_swap(control):
    address, key, seen = control
    idle = [socket.create_connection(address) for _ in range(3)]  # say nothing, stay open
    try:
        with Client(address, authkey=key) as conn:
            conn.send({"op": "swap", "version": 2})
            assert conn.poll(20), "the control port did not answer while idle ones were open"
            assert conn.recv() == {"ok": True, "echo": {"op": "swap", "version": 2}}
    finally:
        for sock in idle:
            sock.close()
    assert seen == [{"op": "swap", "version": 2}]


def test_a_wrong_key_is_refused_and_never_handled(control):
    address, _, seen = control
    with pytest.raises((AuthenticationError, EOFError, ConnectionError)):
        Client(address, authkey=b"not the key")
    assert seen == []


def test_an_idle_connection_is_closed_after_the_timeout():
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(target=serve_control,
                              args=(listener, b"k" * 32, lambda r: {}, stop, 0.3), daemon=True)
    thread.start()
    try:
        idle = socket.create_connection(listener.getsockname())
        idle.settimeout(30)
        data = b""
        while chunk := idle.recv(4096):  # the challenge, then EOF once the server gives up
            data += chunk
        assert data  # it was challenged, and then closed
        idle.close()
    finally:
        stop.set()
        thread.join(10)
        listener.close()
