"""A video-style run's quality report and contact sheet through the API (viewers; only the
run's own files, found from its record in the data store)."""

from __future__ import annotations

import io

from PIL import Image
from svc_helpers import FAST, wait_for

RUNS = "/api/v1/pipelines/video-style/runs"


def _finished(client, run_id, headers):
    def check():
        run = client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
        return run if run["state"] in ("succeeded", "failed", "canceled") else None

    return wait_for(check)


def test_a_run_serves_its_quality_report_and_contact_sheet(ws, client_for, clip_in_data,
                                                           tokens):
    client = client_for(auth="always")
    viewer = tokens["viewer"]
    r = client.post(RUNS, json={"input": clip_in_data, "output": "outgoing/", "style": "7",
                                **FAST}, headers=tokens["operator"])
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    assert client.get(f"/api/v1/runs/{run_id}/quality", headers=viewer).status_code in (
        409, 200)  # 409 while it runs
    assert _finished(client, run_id, viewer)["state"] == "succeeded"

    report = client.get(f"/api/v1/runs/{run_id}/quality", headers=viewer)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["settings"]["style"] == "7" and body["settings"]["max_size"] == 64
    assert body["output"] == "clip.mp4" and "/" not in body["input"]  # no service paths
    assert 0 < body["summary"]["content_kept"] <= 1 and body["frames"]
    sheet = client.get(f"/api/v1/runs/{run_id}/contact.png", headers=viewer)
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(sheet.content)).format == "PNG"
    assert ws.data.local_path("outgoing", run_id, "clip.mp4.contact.png").is_file()

    # no token: 401; an unknown run: 404; the sheet gone: 404 naming it
    assert client.get(f"/api/v1/runs/{run_id}/quality").status_code == 401
    assert client.get("/api/v1/runs/nope/quality", headers=viewer).status_code == 404
    ws.data.local_path("outgoing", run_id, "clip.mp4.contact.png").unlink()
    gone = client.get(f"/api/v1/runs/{run_id}/contact.png", headers=viewer)
    assert gone.status_code == 404 and "contact.png" in gone.json()["detail"]


def test_the_dashboard_shows_a_runs_figures_and_contact_sheet(ws, clip_in_data):
    from svc_helpers import serve_in_thread
    from test_dashboard import ARGS, CHROMIUM, _need_browser, _remember_token

    from batchscore.pipelines import get_run, request_run
    from batchscore.service import ServiceConfig, create_app

    _need_browser()
    from playwright.sync_api import sync_playwright

    run = request_run(ws, "video-style", {"input": clip_in_data, "output": "outgoing/",
                                          "style": "7", **FAST})
    app = create_app(ws, ServiceConfig(scan_interval=0.3, run_slots=1))
    with serve_in_thread(app) as url, sync_playwright() as p:
        wait_for(lambda: get_run(ws.engine, run.id).finished)
        assert get_run(ws.engine, run.id).state == "succeeded"
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.add_init_script(_remember_token(ws))  # as a user pastes it
            page.goto(f"{url}/dashboard/")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            page.locator(f"#runs tr[data-run='{run.id}']").click()
            page.wait_for_selector("#quality:not([hidden])", timeout=20_000)
            assert "content kept" in page.locator("#quality-summary").inner_text()
            assert "style 7" in page.locator("#quality-settings").inner_text()
            assert page.locator("#quality-frames tbody tr").count() >= 1
            page.wait_for_function(
                "document.querySelector('#contact-sheet').naturalWidth > 0", timeout=20_000)
        finally:
            browser.close()
