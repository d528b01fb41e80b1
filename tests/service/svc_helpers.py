"""Helpers of the service tests: a tiny clip with audio, fast job settings, waiting, and the
test client (imported here, where its deprecation warning is silenced)."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import wait_for
from video.conftest import ClipSpec, write_clip

with warnings.catch_warnings():  # starlette warns about its own httpx-based test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["CLIP", "FAST", "TestClient", "make_clip", "serve_in_thread", "wait_for"]

CLIP = ClipSpec(pts=tuple(range(24)), keyint=12, audio=[(48000, "stereo", "eng")])
FAST = {"max_size": 64, "workers": 1, "segment_frames": 12, "batch_size": 4}


def make_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_clip(path, CLIP)




@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 in a thread; yields its URL."""
    import uvicorn

    from servers import free_port

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, timeout=20, every=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=20)
