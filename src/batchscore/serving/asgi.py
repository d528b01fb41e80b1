"""The scoring app's front: every request measured, the two scoring routes served at once.

:class:`ScoringApp` is the FastAPI app whose ``__call__`` goes through
:class:`ScoringMiddleware` first, outside Starlette's own middleware stack.
:class:`ScoringMiddleware` is a plain ASGI middleware (no per-request task, no wrapped
request streams, as Starlette's ``BaseHTTPMiddleware`` makes): it times every request and
counts it by route and status (:class:`~batchscore.serving.metrics.ServingMetrics`), and it
answers ``POST /invocations`` and ``POST /v2/models/{name}/infer`` itself with the
:class:`~batchscore.serving.exchange.Exchange` that the FastAPI routes declaring them run,
before FastAPI's routing, dependency solving and thread-pool layers. Everything else (health,
metadata, ``/metrics``, the OpenAPI document, 405 for another method on a scoring path) goes
on to the FastAPI app."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .exchange import Answer, Exchange
from .metrics import ServingMetrics

__all__ = ["INFER_ROUTE", "INVOCATIONS_ROUTE", "ScoringApp", "ScoringMiddleware"]

INVOCATIONS_ROUTE = "/invocations"
INFER_ROUTE = "/v2/models/{name}/infer"
_INFER = re.compile(r"/v2/models/([^/]+)/infer")  # as Starlette matches {name}
log = logging.getLogger("batchscore.serving")


def _route_path(scope: Scope) -> str:
    """The path below the app's root path, as Starlette's router matches it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] == "/":
        return path[len(root):]
    return path


class ScoringMiddleware:
    """Measure every request; serve the scoring routes with ``exchange``."""

    def __init__(self, app: ASGIApp, exchange: Exchange, metrics: ServingMetrics) -> None:
        self.app, self.exchange, self.metrics = app, exchange, metrics
        self.timer = metrics.detector.timer  # the clock latencies are measured with

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.timer()
        route, name = None, None
        if scope["method"] == "POST":
            path = _route_path(scope)
            if path == INVOCATIONS_ROUTE:
                route = INVOCATIONS_ROUTE
            elif (found := _INFER.fullmatch(path)) is not None:
                route, name = INFER_ROUTE, found.group(1)
        status: list[int] = []

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            if route is None:
                await self.app(scope, receive, send_status)
            else:
                await self._score(name, scope, receive, send_status)
        except ClientDisconnect:  # nobody to answer: not a request served
            return
        except Exception as exc:  # a failure nothing else caught: answer 500, count it
            log.exception("%s %s failed", scope["method"], scope["path"])
            if status:  # the answer has begun: the server closes the connection
                self._record(scope, route, 500, started)
                raise
            answer = Answer.failure(f"the server failed: {type(exc).__name__}: {exc}", 500,
                                    Headers(scope=scope).get("x-request-id") or "")
            await self._send(answer, send_status)
        if status:
            self._record(scope, route, status[0], started)

    async def _score(self, name: str | None, scope: Scope, receive: Receive,
                     send: Send) -> None:
        headers = Headers(scope=scope)
        if name is None:
            answer = await self.exchange.invocations(headers, receive)
        else:
            answer = await self.exchange.infer(name, headers, receive)
        await self._send(answer, send)
        if answer.after is not None:  # the client has its answer
            answer.after()

    @staticmethod
    async def _send(answer: Answer, send: Send) -> None:
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": answer.headers()})
        await send({"type": "http.response.body", "body": answer.body})

    def _record(self, scope: Scope, route: str | None, status: int, started: float) -> None:
        path = route or getattr(scope.get("route"), "path", "unmatched")
        self.metrics.record(path, status, self.timer() - started)


class ScoringApp(FastAPI):
    """A FastAPI app that :meth:`serve_scoring` puts a :class:`ScoringMiddleware` in front
    of: a scoring request goes from the server straight to the exchange, past Starlette's
    error, telemetry and body-limit layers (the middleware answers failures itself)."""

    front: ScoringMiddleware | None = None

    def serve_scoring(self, exchange: Exchange, metrics: ServingMetrics) -> None:
        """Measure every request and serve the scoring routes with ``exchange``."""
        self.front = ScoringMiddleware(super().__call__, exchange, metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            await super().__call__(scope, receive, send)
        else:
            await self.front(scope, receive, send)
