"""A draining serving child knows every connection it has accepted, also one asyncio has
accepted but not yet handed to a protocol (the moment in which a connection made just before
SIGTERM was closed unanswered under load: 'Connection reset by peer' in a swap)."""

from __future__ import annotations

import asyncio
import socket

from batchscore.serving.child import _accepting


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
