"""The OpenAPI document describes the answers (issue 16): at least 90% of the ``/api/v1``
operations have a named 2xx response schema, and the response models keep exactly the keys
(in their order) that the service sent before it had them: a model that forgot a key would
make it vanish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_jobs_submit import body_for, put_inputs

from batchscore.endpoints import create_endpoint
from batchscore.jobs import spec_from_mapping
from batchscore.pipelines import request_run
from batchscore.service import ServiceConfig, create_app
from batchscore.workspace import Workspace

# Only file downloads answer without a JSON schema.
DOWNLOADS = {"GET /api/v1/download", "GET /api/v1/runs/{run_id}/contact.png"}
JOB = ["id", "key", "kind", "name", "state", "spec", "inputs", "output_url", "overwrite",
       "reason", "created_at", "started_at", "finished_at", "runner", "heartbeat_at",
       "cancel_requested", "minibatches_total", "items_total", "items_succeeded",
       "items_failed", "display_state", "items_in_progress"]
JOB_SUMMARY = [k for k in JOB if k != "spec"]
RUN = ["id", "pipeline", "params", "state", "run_key", "trigger_id", "job_id", "output_url",
       "reason", "created_by", "runner", "created_at", "started_at", "finished_at"]
TRIGGER = ["id", "name", "kind", "pipeline", "params", "prefix", "pattern", "output", "marker",
           "settle_seconds", "cron", "cursor", "enabled", "created_at"]
ENDPOINT = ["name", "spec", "model", "description", "created_by", "created_at", "updated_at",
            "kind"]


def _named(schema: dict[str, Any]) -> bool:
    """A reference to a named component, or a list of them."""
    return "$ref" in schema or "$ref" in schema.get("items", {})


def operations(doc: dict[str, Any]) -> dict[str, bool]:
    """Each ``/api/v1`` operation, and whether a 2xx answer of it has a named JSON schema."""
    found = {}
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in ops.items():
            found[f"{method.upper()} {path}"] = any(
                _named(content.get("schema", {}))
                for status, answer in op["responses"].items() if status.startswith("2")
                for content in answer.get("content", {}).values())
    return found


def test_at_least_90_percent_of_the_operations_describe_their_answer(ws: Workspace) -> None:
    found = operations(create_app(ws, ServiceConfig(background=False)).openapi())
    without = sorted(op for op, named in found.items() if not named)
    share = 1 - len(without) / len(found)
    assert len(found) > 40
    assert share >= 0.9, f"{share:.0%} of {len(found)} operations; without one: {without}"
    assert set(without) <= DOWNLOADS, f"operations without a named 2xx schema: {without}"


def test_the_document_is_served_with_the_models(client_for: Any) -> None:
    doc = client_for(background=False).get("/api/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert list(schemas["JobView"]["properties"]) == JOB
    assert list(schemas["RunDetail"]["properties"]) == [*RUN, "job", "links"]
    assert schemas["JobView"]["additionalProperties"] is False
    answer = doc["paths"]["/api/v1/jobs"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/JobSummary"}


def test_job_and_run_answers_keep_their_keys(ws: Workspace, tmp_path: Path, client_for: Any,
                                             tokens: dict[str, dict[str, str]]) -> None:
    client = client_for(background=False)
    admin = tokens["admin"]
    folder = put_inputs(ws)
    made = client.post("/api/v1/jobs", headers=admin,
                       json=body_for(tmp_path, [f"{folder}/*.txt"], "outgoing/keys/"))
    assert made.status_code == 202, made.text
    submitted = made.json()
    assert list(submitted) == ["job_id", "run_id", "created", "script", "job", "links"]
    assert list(submitted["job"]) == JOB_SUMMARY
    assert list(submitted["links"]) == ["self", "minibatches", "logs", "run"]
    job_id, run_id = submitted["job_id"], submitted["run_id"]
    assert list(client.get(f"/api/v1/jobs/{job_id}", headers=admin).json()) == JOB
    assert [list(j) for j in client.get("/api/v1/jobs", headers=admin).json()] == [JOB_SUMMARY]
    run = client.get(f"/api/v1/runs/{run_id}", headers=admin).json()
    assert list(run) == [*RUN, "job", "links"]
    assert list(run["job"]) == JOB_SUMMARY and list(run["links"]) == ["self", "output"]
    assert [list(r) for r in client.get("/api/v1/runs", headers=admin).json()] == [
        [*RUN, "job"]]
    batches = client.get(f"/api/v1/jobs/{job_id}/minibatches", headers=admin).json()
    assert [list(b) for b in batches] == [[
        "job_id", "idx", "items", "n_items", "state", "attempts", "part", "items_succeeded",
        "items_failed", "worker", "started_at", "finished_at", "error"]] * 2
    canceled = client.post(f"/api/v1/runs/{run_id}/cancel", headers=admin)
    assert canceled.status_code == 200, canceled.text
    assert list(canceled.json()) == RUN


def test_trigger_answers_keep_their_keys(client_for: Any,
                                         tokens: dict[str, dict[str, str]]) -> None:
    client = client_for(background=False)
    admin = tokens["admin"]
    made = client.post("/api/v1/triggers", headers=admin, json={
        "name": "t", "pipeline": "video-style", "prefix": "incoming/", "output": "outgoing/"})
    assert made.status_code == 201, made.text
    assert list(made.json()) == [*TRIGGER, "last_error", "last_scan", "runs"]
    shown = client.get("/api/v1/triggers/t", headers=admin).json()
    assert list(shown) == [*TRIGGER, "last_error", "last_scan", "runs", "ledger"]
    removed = client.delete("/api/v1/triggers/t", headers=admin).json()
    assert list(removed) == TRIGGER


def test_endpoint_answers_keep_their_keys_and_a_job_only_once_there_is_one(
        ws: Workspace, tmp_path: Path, client_for: Any,
        tokens: dict[str, dict[str, str]]) -> None:
    client = client_for(background=False)
    admin = tokens["admin"]
    folder = put_inputs(ws)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init():\n    pass\n\n"
                                                "def run(batch):\n    return batch\n")
    create_endpoint(ws, "e", spec_from_mapping({"scoring_script": str(tmp_path / "code" /
                                                                      "score.py")}))
    assert list(client.get("/api/v1/endpoints/e", headers=admin).json()) == [
        *ENDPOINT, "invocations"]
    invoked = client.post("/api/v1/endpoints/e/invoke", headers=admin, json={
        "inputs": [f"{folder}/*.txt"], "output": "outgoing/e/"})
    assert invoked.status_code == 202, invoked.text
    assert list(invoked.json()) == ["endpoint", "job_id", "run_id", "created", "links"]
    assert list(invoked.json()["links"]) == ["endpoint", "job", "run", "logs"]
    waiting = request_run(ws, "batch-endpoint", {"endpoint": "e", "inputs": [f"{folder}/*.txt"],
                                                 "output": "outgoing/later/"})
    shown = client.get("/api/v1/endpoints/e", headers=admin).json()
    by_id = {i["id"]: list(i) for i in shown["invocations"]}
    assert by_id[waiting.id] == RUN  # no job yet: no "job" key (not "job": null)
    assert by_id[invoked.json()["run_id"]] == [*RUN, "job"]
    assert [list(e) for e in client.get("/api/v1/endpoints", headers=admin).json()] == [ENDPOINT]


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/tokens", "/api/v1/pipelines"])
def test_small_answers_keep_their_keys(client_for: Any, tokens: dict[str, dict[str, str]],
                                       path: str) -> None:
    expected = {"/healthz": ["status", "uptime_s", "run_slots", "runs_active"],
                "/api/v1/tokens": ["id", "name", "role", "created_at", "last_used_at",
                                   "revoked"],
                "/api/v1/pipelines": ["name", "summary", "role", "parameters"]}[path]
    answer = client_for(background=False).get(path, headers=tokens["admin"]).json()
    assert list(answer if isinstance(answer, dict) else answer[0]) == expected


def test_every_operation_declares_its_role_once_and_the_door_reads_it() -> None:
    from fastapi.routing import APIRoute

    from batchscore.service.deps import DoorRules, is_public, route_role
    from batchscore.service.routers import API, health

    paths = [f"/api/v1{r.path}" for router in API for r in router.routes
             if isinstance(r, APIRoute) and route_role(r) is None]
    paths += [r.path for r in health.router.routes if route_role(r) is None]
    undeclared = sorted(p for p in paths if not is_public(p))
    assert undeclared == [], f"operations without a declared role: {undeclared}"
    assert sorted(paths) == ["/", "/api/v1/download", "/healthz"]
    rules = DoorRules(API, prefix="/api/v1")

    def door(method: str, path: str) -> str:
        return rules.role({"type": "http", "method": method, "path": path, "root_path": ""})

    for verb in ("POST",):  # what the guard's own list said before the routes said it
        for path in ("jobs", "tokens", "triggers", "endpoints", "streams", "connections"):
            assert door(verb, f"/api/v1/{path}") == "admin", path
    for path in ("tokens/t", "triggers/t", "endpoints/e", "streams/s", "connections/c",
                 "endpoints/e/deployments/d"):
        assert door("DELETE", f"/api/v1/{path}") == "admin", path
    assert door("PUT", "/api/v1/endpoints/e/default") == "admin"
    assert door("POST", "/api/v1/endpoints/e/deployments") == "admin"
    assert door("POST", "/api/v1/pipelines/train-evaluate-register/runs") == "admin"
    assert door("POST", "/api/v1/pipelines/video-style/runs") == "operator"
    assert door("POST", "/api/v1/pipelines/nope/runs") == "operator"
    assert door("POST", "/api/v1/endpoints/e/invoke") == "operator"
    assert door("PUT", "/api/v1/data/incoming/x.csv") == "operator"
    assert door("POST", "/api/v1/no/such/route") == "operator"
    assert door("GET", "/api/v1/tokens") == "viewer"  # reads have no body: the route decides


def test_the_door_refuses_a_body_the_route_would_refuse_by_role(
        client_for: Any, tokens: dict[str, dict[str, str]]) -> None:
    """Choosing an endpoint's default deployment is an admin's: an operator's body is never
    read (403 at the door, not 422 for the broken JSON), since the door reads the route's
    role."""
    client = client_for(background=False)
    for body in (b"{not json", b'{"deployment": "d"}'):
        r = client.put("/api/v1/endpoints/e/default", headers=tokens["operator"], content=body)
        assert r.status_code == 403 and "needs admin" in r.json()["detail"], r.text
    r = client.put("/api/v1/endpoints/e/default", headers=tokens["admin"], content=b"{not json")
    assert r.status_code == 422
