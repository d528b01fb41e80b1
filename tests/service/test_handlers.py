"""One mapping of exceptions to HTTP statuses (:mod:`batchscore.service.handlers`): an
exception's own ``http_status`` first, then the table; the body is ``{"detail": message}``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from svc_helpers import TestClient

from batchscore.errors import BatchscoreError, InputError, JobNotFoundError, UsageError
from batchscore.jobs.bundle import BundleTooLargeError
from batchscore.service import ServiceConfig, create_app
from batchscore.service.handlers import status_of
from batchscore.service.links import LinkError
from batchscore.service.output_rows import OutputGoneError
from batchscore.streaming import StreamNotFoundError, StreamUnavailableError
from batchscore.workspace import Workspace


class _Teapot(InputError):
    http_status = 418


@pytest.mark.parametrize(("exc", "status"), [
    (LinkError("x"), 403), (JobNotFoundError("x"), 404), (OutputGoneError("x"), 404),
    (StreamNotFoundError("x"), 404), (BundleTooLargeError("x"), 413),
    (StreamUnavailableError("x"), 503), (InputError("x"), 400), (UsageError("x"), 400),
    (_Teapot("x"), 418), (BatchscoreError("x"), None),
])
def test_the_status_of_each_kind_of_error(exc: Exception, status: int | None) -> None:
    assert status_of(exc) == status


def test_errors_answer_their_status_with_the_message_as_detail(ws: Workspace) -> None:
    app = create_app(ws, ServiceConfig(background=False, auth="off"))
    failing = APIRouter()
    raised: dict[str, Any] = {"teapot": _Teapot("no coffee here"),
                              "gone": OutputGoneError("the output of job j is gone"),
                              "ours": BatchscoreError("the service broke")}

    @failing.get("/fail/{what}")
    def fail(what: str) -> None:
        raise raised[what]

    app.include_router(failing)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        r = client.get("/fail/teapot")
        assert (r.status_code, r.json()) == (418, {"detail": "no coffee here"})
        r = client.get("/fail/gone")
        assert (r.status_code, r.json()) == (404, {"detail": "the output of job j is gone"})
        assert client.get("/fail/ours").status_code == 500  # not the caller's fault
