"""Streaming fixtures: a stream on the session's Redis, under a key of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from batchscore.streaming import Stream, create_stream
from batchscore.workspace import Workspace


@pytest.fixture
def make_stream(ws: Workspace, redis_url: str) -> Callable[..., Stream]:
    """Create a stream on the test Redis under a key of its own."""

    def make(name: str = "s", **options: Any) -> Stream:
        options.setdefault("redis_url", redis_url)
        options.setdefault("redis_key", f"test:{uuid.uuid4().hex}")
        return create_stream(ws, name, **options)

    return make
