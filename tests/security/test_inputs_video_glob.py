"""A glob as the ``video-style`` input was accepted and failed only at run time: it is refused
when the run is requested, with a 400 that names the input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchscore.errors import InputError
from batchscore.pipelines import request_run
from batchscore.service import ServiceConfig, create_app, create_token
from batchscore.workspace import Workspace
from service.svc_helpers import TestClient, make_clip


@pytest.fixture
def clip_in_data(ws: Workspace) -> str:
    make_clip(ws.data.local_path("incoming", "clip.mp4"))
    return "incoming/clip.mp4"


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(ws, ServiceConfig(background=False))) as c:
        yield c


@pytest.fixture
def tokens(ws: Workspace) -> dict[str, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}
            for role in ("viewer", "operator")}


@pytest.mark.parametrize("pattern", ["incoming/*.mp4", "incoming/clip?.mp4",
                                     "incoming/[a-c]lip.mp4", "incoming/**/clip.mp4"])
def test_a_glob_video_input_is_refused_at_submission(
        ws: Workspace, clip_in_data: str, client: TestClient,
        tokens: dict[str, dict[str, str]], pattern: str) -> None:
    answer = client.post("/api/v1/pipelines/video-style/runs", headers=tokens["operator"],
                         json={"input": pattern, "output": "styled/"})
    assert answer.status_code == 400, answer.text
    assert pattern in answer.json()["detail"] and "one video" in answer.json()["detail"]
    with pytest.raises(InputError, match="one video"):
        request_run(ws, "video-style", {"input": pattern, "output": "styled/"})
    assert client.get("/api/v1/runs", headers=tokens["viewer"]).json() == []


def test_the_video_itself_is_accepted(ws: Workspace, clip_in_data: str, client: TestClient,
                                      tokens: dict[str, dict[str, str]]) -> None:
    answer = client.post("/api/v1/pipelines/video-style/runs", headers=tokens["operator"],
                         json={"input": clip_in_data, "output": "styled/"})
    assert answer.status_code in (201, 202), answer.text
