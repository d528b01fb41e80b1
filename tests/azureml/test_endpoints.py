"""Endpoints with deployments: endpoint create -f endpoint.yml, deployment create -f
deployment.yml, a default deployment, invoking a named one, jobs listed per deployment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from azureml.az_helpers import expected
from batchscore.endpoints import (
    LEGACY,
    DeploymentNotFoundError,
    create_deployment,
    create_endpoint,
    delete_deployment,
    deployment_jobs,
    get_deployment,
    list_deployments,
)
from batchscore.errors import SpecError, UsageError
from batchscore.jobs.spec import load_spec, spec_from_mapping
from batchscore.workspace import Workspace


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return result.output


def _error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def heart(layout, cli, tmp_path: Path) -> Path:
    """heart-mlflow with heart-custom's code, model and deployment beside it, both models
    registered."""
    root = layout("heart-mlflow")
    custom = layout("heart-custom")
    shutil.copytree(custom / "code", root / "code")
    shutil.copytree(custom / "model", root / "pickled")
    shutil.copy(custom / "deployment.yml", root / "custom.yml")
    _ok(cli(root, "model", "create", "-f", "model.yml"))
    _ok(cli(root, "model", "create", "--name", "heart-classifier-sklearn", "--path",
            "pickled"))
    return root


def test_endpoint_with_two_deployments(heart: Path, cli, ws: Workspace) -> None:
    out = _ok(cli(heart, "endpoint", "create", "-f", "endpoint.yml"))
    assert "endpoint heart-classifier created (no deployments yet" in out
    assert "has no deployments yet" in _error(cli(
        heart, "endpoint", "invoke", "heart-classifier", "-i", "data", "-o", "x"))
    out = _ok(cli(heart, "deployment", "create", "-f", "deployment.yml",
                  "--endpoint-name", "heart-classifier"))
    assert "deployment classifier-mlflow created in endpoint heart-classifier (default)" in out
    out = _ok(cli(heart, "deployment", "create", "-f", "custom.yml", "--endpoint-name",
                  "heart-classifier"))
    assert "(default)" not in out
    listed = json.loads(_ok(cli(heart, "deployment", "list", "-e", "heart-classifier",
                                "--json")))
    assert [(d["name"], d["is_default"]) for d in listed] == [
        ("classifier-mlflow", True), ("classifier-sklearn", False)]

    # the default: the MLflow model without a script
    _ok(cli(heart, "endpoint", "invoke", "heart-classifier", "-i", "data", "-o", "a",
            "--wait", "--no-progress"))
    frame = pd.read_csv(heart / "a" / "predictions.csv", names=["row", "prediction", "file"])
    assert len(frame) == sum(len(v) for v in expected(heart / "data").values())
    # a named one: the scoring script over the pickled model
    _ok(cli(heart, "endpoint", "invoke", "heart-classifier", "--deployment-name",
            "classifier-sklearn", "-i", "data", "-o", "b", "--wait", "--no-progress"))
    lines = (heart / "b" / "predictions.csv").read_text().splitlines()
    assert len(lines) == len(frame) and all(len(line.split()) == 3 for line in lines)

    # the default moves; invoking the endpoint follows it
    _ok(cli(heart, "endpoint", "update", "heart-classifier", "--default-deployment",
            "classifier-sklearn"))
    _ok(cli(heart, "endpoint", "invoke", "heart-classifier", "-i", "data", "-o", "c",
            "--wait", "--no-progress"))
    assert (heart / "c" / "predictions.csv").read_text() == \
        (heart / "b" / "predictions.csv").read_text()

    jobs = {d: [r["output_url"].rsplit("/", 1)[-1] for r in
                deployment_jobs(ws, "heart-classifier", d)]
            for d in ("classifier-mlflow", "classifier-sklearn")}
    assert jobs == {"classifier-mlflow": ["a"], "classifier-sklearn": ["c", "b"]}
    listed = json.loads(_ok(cli(heart, "deployment", "list-jobs", "classifier-mlflow", "-e",
                                "heart-classifier", "--json")))
    assert [r["output_url"].rsplit("/", 1)[-1] for r in listed] == ["a"]
    assert "job-" in _ok(cli(heart, "deployment", "list-jobs", "classifier-mlflow", "-e",
                             "heart-classifier"))
    shown = _ok(cli(heart, "endpoint", "show", "heart-classifier"))
    assert "deployment: classifier-sklearn (default)" in shown

    # the default cannot go while another deployment is there
    assert "is the default of endpoint 'heart-classifier'" in _error(cli(
        heart, "deployment", "delete", "classifier-sklearn", "-e", "heart-classifier"))
    _ok(cli(heart, "deployment", "delete", "classifier-mlflow", "-e", "heart-classifier"))
    assert [d.name for d in list_deployments(ws, "heart-classifier")] == \
        ["classifier-sklearn"]


def test_deployment_errors(heart: Path, cli, ws: Workspace) -> None:
    assert "no endpoint named 'nope'" in _error(cli(
        heart, "deployment", "create", "-f", "deployment.yml", "-e", "nope"))
    _ok(cli(heart, "endpoint", "create", "heart-classifier"))
    _ok(cli(heart, "deployment", "create", "-f", "deployment.yml"))  # endpoint_name: of YAML
    assert "has a deployment 'classifier-mlflow' already" in _error(cli(
        heart, "deployment", "create", "-f", "deployment.yml"))
    assert "deployments are classifier-mlflow" in _error(cli(
        heart, "endpoint", "invoke", "heart-classifier", "-d", "other", "-i", "data",
        "-o", "x"))
    assert "deployment name 'a b'" in _error(cli(
        heart, "deployment", "create", "-f", "deployment.yml", "--name", "a b"))
    (heart / "bad-endpoint.yml").write_text("name: e2\nauth: key\n")
    assert "unknown key 'auth'" in _error(cli(heart, "endpoint", "create", "-f",
                                              "bad-endpoint.yml"))
    assert "exists already" in _error(cli(heart, "endpoint", "create", "-f", "endpoint.yml"))
    with pytest.raises(DeploymentNotFoundError, match="no deployment 'x'"):
        get_deployment(ws, "heart-classifier", "x")
    with pytest.raises(UsageError, match="no registered model named 'missing'"):
        (heart / "m.yml").write_text("model: azureml:missing@latest\n")
        create_deployment(ws, "heart-classifier", "m", load_spec(heart / "m.yml"))


def test_endpoint_made_with_a_script_has_one_default_deployment(heart: Path, ws: Workspace
                                                                ) -> None:
    spec = spec_from_mapping({"scoring_script": str(heart / "code" / "batch_driver.py"),
                              "model_dir": str(heart / "pickled")})
    create_endpoint(ws, "legacy", spec)
    (only,) = list_deployments(ws, "legacy")
    assert (only.name, only.is_default) == (LEGACY, True)
    create_deployment(ws, "legacy", "mlflow", load_spec(heart / "deployment.yml"))
    assert [(d.name, d.is_default) for d in list_deployments(ws, "legacy")] == [
        (LEGACY, True), ("mlflow", False)]
    with pytest.raises(SpecError, match="make another the default first"):
        delete_deployment(ws, "legacy", LEGACY)


def test_rest_api_deployments_by_role(heart: Path, ws: Workspace) -> None:
    """Viewers list, operators invoke a named deployment, admins create, default, delete."""
    from batchscore.endpoints import create_bare_endpoint
    from batchscore.service import ServiceConfig, create_app, create_token
    from service.svc_helpers import TestClient, wait_for

    create_bare_endpoint(ws, "heart")
    for src in sorted((heart / "data").glob("*.csv")):
        ws.data.put_file(src, f"incoming/{src.name}")
    viewer, operator, admin = (
        {"Authorization": f"Bearer {create_token(ws.engine, n, n)[1]}"}
        for n in ("viewer", "operator", "admin"))
    with TestClient(create_app(ws, ServiceConfig(run_slots=1))) as client:
        body = {"name": "mlflow", "model": "azureml:heart-classifier-mlflow@latest",
                "settings": {"mini_batch_size": 1}}
        url = "/api/v1/endpoints/heart/deployments"
        assert client.post(url, json=body, headers=operator).status_code == 403
        made = client.post(url, json=body, headers=admin)
        assert made.status_code == 201, made.text
        assert made.json()["is_default"] is True
        for model in (str(heart / "model"), "file:///etc", "../model"):
            refused = client.post(url, json={**body, "name": "x", "model": model},
                                  headers=admin)
            assert refused.status_code == 400 and "registered model" in refused.text
        assert client.post(url, json={**body, "name": "x", "model": "azureml:nope@latest"},
                           headers=admin).status_code == 400
        assert [d["name"] for d in client.get(url, headers=viewer).json()] == ["mlflow"]
        assert client.get(f"{url}/other", headers=viewer).status_code == 404

        invoke = {"inputs": ["incoming/*.csv"], "output": "scored/heart/"}
        assert client.post(f"{url}/mlflow/invoke", json=invoke,
                           headers=viewer).status_code == 403
        answer = client.post(f"{url}/mlflow/invoke", json=invoke, headers=operator)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]

        def finished() -> dict | None:
            job = client.get(f"/api/v1/jobs/{job_id}", headers=viewer).json()
            return job if job["state"] in ("succeeded", "failed") else None

        assert wait_for(finished, timeout=120)["state"] == "succeeded"
        frame = pd.read_csv(ws.data.local_path("scored", "heart", "predictions.csv"),
                            names=["row", "prediction", "file"])
        assert len(frame) == sum(len(v) for v in expected(heart / "data").values())
        assert [r["job_id"] for r in client.get(f"{url}/mlflow/jobs", headers=viewer).json()] \
            == [job_id]
        assert client.put("/api/v1/endpoints/heart/default", json={"deployment": "mlflow"},
                          headers=operator).status_code == 403
        assert client.put("/api/v1/endpoints/heart/default", json={"deployment": "mlflow"},
                          headers=admin).status_code == 200
        assert client.delete(f"{url}/mlflow", headers=operator).status_code == 403
        assert client.delete(f"{url}/mlflow", headers=admin).status_code == 200
        assert client.get(url, headers=viewer).json() == []


def test_dashboard_lists_deployments(heart: Path, ws: Workspace) -> None:
    """The dashboard's Batch endpoints table: one row per deployment, the default marked
    (in headless Chromium; skipped where there is none, failed where services are required)."""
    from batchscore.endpoints import create_bare_endpoint
    from batchscore.service import ServiceConfig, create_app
    from servers import services_required
    from service.svc_helpers import serve_in_thread

    chromium = "/usr/bin/chromium"  # as tests/service/test_dashboard.py
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None  # type: ignore[assignment]
    if sync_playwright is None or not shutil.which(chromium):
        message = "needs the playwright package and /usr/bin/chromium"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    create_bare_endpoint(ws, "empty")
    create_bare_endpoint(ws, "heart")
    create_deployment(ws, "heart", "mlflow", load_spec(heart / "deployment.yml"))
    create_deployment(ws, "heart", "sklearn", load_spec(heart / "custom.yml"))
    with serve_in_thread(create_app(ws, ServiceConfig(run_slots=1))) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            token = (ws.settings.root / "service" / "admin.token").read_text().strip()
            page.add_init_script(f"localStorage.setItem('batchscore-token', {token!r});")
            page.goto(f"{url}/")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            rows = page.locator("#endpoints tbody tr")
            assert rows.count() == 3
            default = page.locator("#endpoints tr[data-deployment='mlflow']").inner_text()
            assert "heart" in default and "default" in default
            other = page.locator("#endpoints tr[data-deployment='sklearn']").inner_text()
            assert "default" not in other
            assert "no deployments yet" in page.locator(
                "#endpoints tr[data-endpoint='empty']").inner_text()
        finally:
            browser.close()


def test_deployment_commands_through_the_service(layout, cli, ws: Workspace,
                                                 service: str) -> None:
    """deployment create|list --server: an MLflow model registered in the service's
    workspace deploys without a script; a YAML with a scoring script is refused before
    anything is sent."""
    root = layout("heart-mlflow")
    assert cli(root, "model", "create", "-f", "model.yml").exit_code == 0
    assert cli(root, "endpoint", "create", "-f", "endpoint.yml").exit_code == 0
    made = cli(root, "deployment", "create", "-f", "deployment.yml", "--server", service)
    assert made.exit_code == 0, made.output
    assert "deployment classifier-mlflow created in endpoint heart-classifier (default)" \
        in made.output
    listed = cli(root, "deployment", "list", "--endpoint-name", "heart-classifier", "--json",
                 "--server", service)
    assert [d["name"] for d in json.loads(listed.output)] == ["classifier-mlflow"]
    custom = layout("heart-custom")
    refused = cli(custom, "deployment", "create", "-f", "deployment.yml", "--server",
                  "http://127.0.0.1:9")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "scores a registered MLflow model without a scoring script" in refused.output
