"""The dashboard's cluster panel (issue 19) in a real headless Chromium: it shows the worker
processes of a running job, and refreshes itself: once the job ends they are gone, without a
reload of the page."""

from __future__ import annotations

import threading

from svc_helpers import serve_in_thread, wait_for
from test_dashboard import ARGS, CHROMIUM, _need_browser, _remember_token

from batchscore.jobs import run_job, spec_from_mapping
from batchscore.service import ServiceConfig, create_app

GATED = """
import os, time
def run(mini_batch):
    marks = os.environ["MARKS"]
    open(os.path.join(marks, f"run-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(marks, "go")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return mini_batch
"""


def test_the_cluster_panel_shows_workers_and_refreshes_itself(ws, script, files, marks,  # type: ignore[no-untyped-def]
                                                               tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    spec = spec_from_mapping({"scoring_script": str(script(GATED)), "mini_batch_size": 1,
                              "max_concurrency_per_instance": 1})
    box: dict = {}
    job = threading.Thread(target=lambda: box.setdefault(
        "job", run_job(ws, spec, [str(files(2))], str(tmp_path / "out"))), daemon=True)
    with serve_in_thread(create_app(ws, ServiceConfig(background=False))) as url, \
            sync_playwright() as p:
        job.start()
        try:
            wait_for(lambda: any(marks.glob("run-*")))
            pid = next(marks.glob("run-*")).name.split("-")[1]
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.add_init_script(_remember_token(ws))
            page.goto(f"{url}/")
            page.wait_for_function(
                f"document.querySelector('#cluster').innerText.includes(':{pid}')",
                timeout=30_000)
            panel = page.locator("#cluster-panel").inner_text()
            assert "local: " in panel and "worker processes" in panel
        finally:
            (marks / "go").touch()
        job.join(120)
        assert box["job"].state == "succeeded"
        page.wait_for_function(  # the panel's own timer, no reload: the worker's row goes
            f"!document.querySelector('#cluster').innerText.includes(':{pid}')",
            timeout=60_000)
        assert "0 worker processes" in page.locator("#cluster-summary").inner_text()
        browser.close()
