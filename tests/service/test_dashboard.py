"""The dashboard in a real headless Chromium: runs with progress, a job's mini-batches by
state and worker, a failure's message, logs, the timings chart and triggers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from svc_helpers import FAST, serve_in_thread, wait_for

from batchscore.pipelines import get_run, request_run
from batchscore.service import ServiceConfig, create_app
from batchscore.triggers import create_trigger
from servers import services_required, skip_missing

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _need_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        message = "the playwright package is not installed (pip install -e '.[test]')"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if not shutil.which(CHROMIUM):
        skip_missing("Chromium", f"{CHROMIUM} not found (Debian's chromium package)",
                     "apt-get install -y --no-install-recommends chromium")


@pytest.fixture
def server(ws):
    with serve_in_thread(create_app(ws, ServiceConfig(scan_interval=0.3, run_slots=1))) as url:
        yield url


def test_dashboard_in_headless_chromium(ws, clip_in_data, server):
    _need_browser()
    from playwright.sync_api import sync_playwright

    create_trigger(ws, "videos", "video-style", prefix="incoming/", pattern="*.mp4",
                   output="outgoing/", params={"style": "3"})
    ws.data.write_bytes("broken/bad.mp4", b"not a video")
    good = request_run(ws, "video-style", {"input": clip_in_data, "output": "outgoing/",
                                           **FAST})
    bad = request_run(ws, "video-style", {"input": "broken/bad.mp4", "output": "outgoing/",
                                          **FAST})
    wait_for(lambda: get_run(ws.engine, bad.id).finished and get_run(ws.engine, good.id).finished)
    assert get_run(ws.engine, good.id).state == "succeeded"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.add_init_script(_remember_token(ws))  # as a user pastes it
            page.goto(f"{server}/")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            assert page.url.endswith("/dashboard/")
            good_row = page.locator(f"#runs tr[data-run='{good.id}']")
            assert "succeeded" in good_row.inner_text() and "24/24" in good_row.inner_text()
            bad_row = page.locator(f"#runs tr[data-run='{bad.id}']").inner_text()
            assert "failed" in bad_row and "bad.mp4" in bad_row  # with its error message
            assert page.locator("#triggers tbody tr").count() == 1
            assert "incoming/*.mp4" in page.locator("#triggers").inner_text()

            page.locator(f"#runs tr[data-run='{good.id}']").click()
            page.locator("#minibatches tbody tr").nth(1).wait_for(timeout=20_000)
            assert "2 done on 1 worker(s)" in page.locator("#mb-summary").inner_text()
            assert page.locator("#chart rect").count() >= 2
            assert "job-finished" in page.locator("#log").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def _remember_token(ws) -> str:
    """A page script that keeps the local admin token where the dashboard looks for it."""
    token = (ws.settings.root / "service" / "admin.token").read_text().strip()
    return f"localStorage.setItem('batchscore-token', {token!r});"
