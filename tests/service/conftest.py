"""Service fixtures: an app over a fresh workspace, a client, tokens, a clip in the data store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from svc_helpers import TestClient, make_clip

from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace


@pytest.fixture
def clip_in_data(ws: Workspace) -> str:
    """A 24-frame 64x48 clip with stereo AAC at incoming/clip.mp4 of the data store."""
    make_clip(ws.data.local_path("incoming", "clip.mp4"))
    return "incoming/clip.mp4"


@pytest.fixture
def client_for(ws: Workspace) -> Iterator[Callable[..., TestClient]]:
    clients: list[Any] = []

    def make(**config: Any) -> TestClient:
        client = TestClient(create_app(ws, ServiceConfig(**config)), base_url="http://localhost")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def tokens(ws: Workspace) -> dict[str, dict[str, str]]:
    """Authorization headers for one token of each role."""
    return {role: {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}
            for role in ("viewer", "operator", "admin")}
