"""The control plane's front door (issue 14, High 2): who the caller is is known from the
headers before any body is read; every body is limited while it streams in (chunked too);
JSON bodies are bounded in depth and element count."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace
from service.svc_helpers import TestClient


@pytest.fixture
def app(ws: Workspace) -> Any:
    return create_app(ws, ServiceConfig(background=False, auth="always"))


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://localhost") as c:
        yield c


def bearer(ws: Workspace, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}


def call_raw(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
             chunks: list[bytes]) -> tuple[int, int, bytes]:
    """One request straight through ASGI: (status, body chunks the app read, answer)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1],
                    "more_body": read < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 50000), "state": {},
             "headers": [(b"host", b"localhost"), *headers]}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], read, body


def test_no_token_is_401_before_a_byte_of_the_body_is_read(app):
    # a 57 MiB {"spec":{"x":[{},{},...]}} from nobody used to be parsed (1.5 GB) before the 401
    head = b'{"spec":{"x":['
    chunks = [head] + [b"{}," * 10_000] * 50
    status, read, body = call_raw(app, "POST", "/api/v1/jobs",
                                  [(b"content-type", b"application/json")], chunks)
    assert status == 401 and read == 0, (status, read)
    assert "API token is required" in json.loads(body)["detail"]


def test_a_wrong_token_is_401_and_a_viewer_is_403_before_the_body(app, ws):
    viewer = bearer(ws, "viewer")["Authorization"].encode()
    for auth, expected in ((b"Bearer bs_nope", 401), (viewer, 403)):
        status, read, _ = call_raw(app, "POST", "/api/v1/jobs",
                                   [(b"authorization", auth),
                                    (b"content-type", b"application/json")], [b"{" * 1000])
        assert (status, read) == (expected, 0)


def test_an_unauthenticated_malformed_body_is_401_not_the_schema(client):
    r = client.post("/api/v1/jobs", content=b'{"spec": [}', headers={
        "content-type": "application/json"})
    assert r.status_code == 401, r.text
    assert "errors" not in r.json() and "scoring_script" not in r.text
    r = client.post("/api/v1/triggers", json={"nonsense": True})
    assert r.status_code == 401, r.text


def test_an_oversized_chunked_body_is_413_as_it_streams(client, ws):
    op = bearer(ws, "operator")

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield b'{"input": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'", "output": "o/"}'

    r = client.post("/api/v1/pipelines/video-style/runs", content=chunks(),
                    headers={**op, "content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "limit of 1048576 bytes" in r.json()["detail"]


def test_a_chunked_upload_over_its_limit_is_413_and_leaves_nothing(ws):
    app = create_app(ws, ServiceConfig(background=False, auth="always", max_upload_bytes=1000))
    op = bearer(ws, "operator")
    with TestClient(app, base_url="http://localhost") as client:
        r = client.put("/api/v1/data/incoming/big.bin",
                       content=iter([b"x" * 600, b"y" * 600]), headers=op)
        assert r.status_code == 413, r.text
    assert ws.data.list("incoming") == []


@pytest.mark.parametrize(("body", "reason"), [
    (b"[" * 5000 + b"]" * 5000, "nests deeper than 32"),
    (b'{"input": "a", "output": "o/", "x": [' + b"{}," * 150_000 + b"{}]}",
     "more than 100000 elements"),
    (b'{"input": {"a": ' * 40 + b"1" + b"}" * 40 + b"}", "nests deeper than 32"),
])
def test_json_bodies_are_bounded_in_depth_and_elements(client, ws, body, reason):
    r = client.post("/api/v1/pipelines/video-style/runs", content=body,
                    headers={**bearer(ws, "operator"), "content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert reason in r.json()["detail"]


def test_the_json_shape_check_skips_strings_and_counts_structure():
    from batchscore.service.guard import JsonShapeError, check_json_shape

    check_json_shape(b'{"a": "[[[[[[,,,,,{{{{\\"[[["}', max_depth=1, max_elements=1)
    check_json_shape(b"[[1, 2], [3]]", max_depth=2, max_elements=10)
    with pytest.raises(JsonShapeError, match="deeper than 1"):
        check_json_shape(b"[[1]]", max_depth=1, max_elements=10)
    with pytest.raises(JsonShapeError, match="more than 3 elements"):
        check_json_shape(b"[1, 2, 3, 4]", max_depth=5, max_elements=3)


def test_public_routes_need_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/dashboard/").status_code == 200
    assert client.get("/api/v1/download", params={"path": "x", "expires": 1, "sig": "0"}
                      ).status_code == 403  # the link, not a token, is what is checked


def test_a_nul_in_a_project_path_is_400_not_500(client, ws):
    # found by the fuzzer (FUZZ_EXAMPLES=100): Path.resolve raised ValueError on the NUL
    r = client.post("/api/v1/pipelines/train-evaluate-register/runs",
                    json={"project": "\u0000", "input": None}, headers=bearer(ws, "admin"))
    assert r.status_code == 400, r.text
    assert "control characters" in r.json()["detail"]
