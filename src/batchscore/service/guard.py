"""The control plane's front door: a pure ASGI middleware that runs before any route.

In this order, before a byte of the body is read:

1. **Who.** The ``Authorization: Bearer`` token is checked against the hashed tokens.
2. **Host.** A request without a valid token (whatever header it carries), and every request
   under ``auth="off"``, is served only when its ``Host`` is one of the service's own names
   (localhost, 127.0.0.1, [::1], and those the admin configures), else 421: a page that DNS
   rebinding brought to this port gets nothing. A request without a valid token is then
   answered 401 on every route but the public ones (health, dashboard files, signed
   downloads, the OpenAPI document), whatever its body.
3. **Role at the door.** A request that writes needs the role its route declares (operator
   at least), checked here so that the body of a caller without it is never read: the rules
   are :mod:`.deps`' (:class:`~.deps.DoorRules`, read from the routes' own declarations, and
   :func:`~.deps.is_public`).
4. **Body.** Every route has a body limit, enforced while the body streams in (a chunked body
   as well as one with a ``Content-Length``): over it, 413. A JSON body is read whole (within
   its limit), checked for nesting depth and element count before anyone parses it, then
   handed on; uploads to the data store stream through to the handler, counted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

from ..jsonshape import JsonShapeError, check_json_shape
from .auth import Principal, verify_token
from .deps import WRITES, DoorRules, is_public
from .submit import MAX_SUBMIT_BODY_BYTES

__all__ = ["DEFAULT_HOSTS", "Guard", "JsonShapeError", "check_json_shape", "host_name"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def host_name(value: str) -> str:
    """The name of a ``Host`` header (no port, no brackets, lower case)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.rsplit(":", 1)[0] if ":" in value else value


class Guard:
    """Host check, authentication, the role at the door and body limits (see the module)."""

    def __init__(self, app: Any, service: Any, rules: DoorRules) -> None:
        self.app, self.service, self.rules = app, service, rules

    def _hosts(self) -> set[str]:
        config = self.service.config
        return {h.lower().strip("[]") for h in (*DEFAULT_HOSTS, *config.allowed_hosts)}

    def _limit(self, method: str, path: str) -> int:
        config = self.service.config
        if path.startswith("/api/v1/data/"):
            return int(config.max_upload_bytes)
        if path == "/api/v1/jobs" and method == "POST":
            return MAX_SUBMIT_BODY_BYTES
        return int(config.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.service.config
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        method, path = scope.get("method", "GET"), scope["path"]
        authorization = headers.get(b"authorization", b"").decode("latin-1")

        who: Principal | None = None
        scheme, _, token = authorization.partition(" ")
        if config.auth != "off" and scheme.lower() == "bearer" and token.strip():
            who = await anyio.to_thread.run_sync(verify_token, self.service.ws.engine,
                                                 token.strip())
        if who is None:  # no valid token (any header a page adds proves nothing): Host counts
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self._hosts():
                await _answer(send, 421, f"this service does not answer for host {host!r}; "
                              "an admin may add it with serve --allowed-host")
                return
        if config.auth == "off":
            who = Principal("anonymous", "admin")
        scope.setdefault("state", {})["principal"] = who

        if not is_public(path):
            if who is None:
                await _answer(send, 401, "a valid API token is required "
                              "(Authorization: Bearer ...)",
                              [(b"www-authenticate", b"Bearer")])
                return
            need = self.rules.role(scope)
            if not who.can(need):
                await _answer(send, 403, f"token {who.name!r} has role {who.role}; "
                              f"this needs {need}")
                return

        limit = self._limit(method, path)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _answer(send, 413, f"request body larger than the limit of {limit} bytes")
            return
        if method in WRITES and not path.startswith("/api/v1/data/"):
            await self._buffered(scope, receive, send, limit)
        else:
            await self._streamed(scope, receive, send, limit)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the whole body (within ``limit``), check its JSON shape, then replay it."""
        config = self.service.config
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(send, 413, f"request body larger than the limit of {limit} bytes")
                return
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        del parts
        try:
            check_json_shape(body, config.max_json_depth, config.max_json_elements)
        except JsonShapeError as exc:
            await _answer(send, 400, str(exc))
            return
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Hand the body on as it comes, counting it; over ``limit``, stop with 413."""
        seen = 0
        started = False

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except _TooLarge:
            if not started:
                await _answer(send, 413, f"request body larger than the limit of {limit} bytes")


class _TooLarge(Exception):
    pass


async def _answer(send: Send, status: int, detail: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})

