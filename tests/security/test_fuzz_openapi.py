"""Property-based fuzzing from the OpenAPI documents (Schemathesis): every operation of the
control plane, called with the token of each role, and of the scoring server, never answers
5xx, and every answer whose status the document declares matches the declared schema.

The example count is bounded (derandomized, so a run is repeatable) to keep this to a couple
of minutes; raise ``FUZZ_EXAMPLES`` to dig deeper."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from batchscore.service import ServiceConfig, create_app, create_token  # noqa: E402
from batchscore.serving import ServedModel  # noqa: E402
from batchscore.serving import create_app as scoring_app  # noqa: E402
from batchscore.workspace import init_workspace  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ws = init_workspace(Path(tmp_path_factory.mktemp("fuzz")) / "ws")
    ws.data.write_text("incoming/a.csv", "a,b\n1,2\n")
    app = create_app(ws, ServiceConfig(background=False, auth="always", runs_per_minute=6000,
                                       runs_burst=1000))
    roles = {role: {"Authorization": f"Bearer {create_token(ws.engine, role, role)[1]}"}
             for role in ("viewer", "operator", "admin")}
    yield app, roles
    ws.close()


@pytest.fixture(scope="module")
def control_schema(control: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", control[0],
                                          headers={"Host": "localhost"})


@pytest.fixture(scope="module")
def served_schema() -> Any:
    def total(frame: pd.DataFrame) -> list[float]:
        return frame.sum(axis=1).astype(float).tolist()

    app = scoring_app(ServedModel("toy", "1", [("a", "double"), ("b", "long")], total))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _fuzz(schema: Any, call: Any) -> int:
    """Run ``call(case)`` on generated cases of every operation of ``schema``; returns how
    many operations were fuzzed. Failures name the operation and the case."""
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @FUZZ
        def one(case: Any) -> None:
            call(case)

        one()
        count += 1
    return count


def test_control_plane_never_5xx_and_answers_as_declared(control: Any,
                                                         control_schema: Any) -> None:
    _, roles = control

    def call(case: Any) -> None:
        for headers in (*roles.values(), {}):
            case.call_and_validate(headers={**headers, "Host": "localhost"}, checks=CHECKS)

    assert _fuzz(control_schema, call) >= 30


def test_scoring_server_never_5xx_and_answers_as_declared(served_schema: Any) -> None:
    assert _fuzz(served_schema, lambda case: case.call_and_validate(checks=CHECKS)) >= 8
