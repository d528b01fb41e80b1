"""A draining serving child knows every connection it has accepted, also one asyncio has
accepted but not yet handed to a protocol (the moment in which a connection made just before
SIGTERM was closed unanswered under load: 'Connection reset by peer' in a swap)."""

from __future__ import annotations

import asyncio
import socket

from batchscore.serving.child import _accepting, close_servers


def test_a_connection_accepted_but_not_yet_handed_to_its_protocol_is_counted():
    seen: dict[str, int] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made = asyncio.Event()

        class Protocol(asyncio.Protocol):
            def __init__(self) -> None:
                # asyncio calls the factory in the task that accepted the connection: the
                # connection is accepted, and uvicorn would not know it yet
                seen["while_accepting"] = _accepting(loop)

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set()

        server = await loop.create_server(Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        seen["before"] = _accepting(loop)
        client = socket.create_connection(("127.0.0.1", port))
        try:
            await asyncio.wait_for(made.wait(), 60)
            for _ in range(3):  # the accepting task ends once connection_made is queued
                await asyncio.sleep(0)
            seen["after"] = _accepting(loop)
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert seen == {"before": 0, "while_accepting": 1, "after": 0}


def test_a_stop_queued_before_the_accepting_task_runs_still_answers_the_connection():
    """SIGTERM between asyncio's accept and the task that makes the connection's transport:
    closing the server in that moment made the task fail silently and the accepted
    connection was closed unanswered. The stop waits one loop turn for that task."""
    answers: list[bytes] = []
    closed: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers: list[asyncio.AbstractServer] = []

        class Listening(socket.socket):
            def accept(self):  # type: ignore[no-untyped-def]
                conn, addr = super().accept()
                # the SIGTERM: its stop is queued before the task that asyncio queues next
                loop.call_soon(close_servers, loop, servers, lambda: closed.append(True))
                return conn, addr

        class Answer(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                self.transport.write(b"answer to " + data)  # type: ignore[attr-defined]
                self.transport.close()

        plain = socket.create_server(("127.0.0.1", 0))
        sock = Listening(plain.family, plain.type, plain.proto, fileno=plain.detach())
        servers.append(await loop.create_server(Answer, sock=sock))
        port = sock.getsockname()[1]

        def client() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
                conn.sendall(b"hello")
                answers.append(conn.recv(100))

        await asyncio.wait_for(asyncio.to_thread(client), 120)
        assert not servers[0].is_serving()  # and the stop did happen
        await servers[0].wait_closed()

    asyncio.run(main())
    assert answers == [b"answer to hello"]
    assert closed == [True]
