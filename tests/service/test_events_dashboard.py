"""The dashboard's Events panel in a real headless Chromium: events listed with their
severity, the anomalies going on on top, and a resolution showing up without a reload."""

from __future__ import annotations

import time

import pytest
from svc_helpers import serve_in_thread
from test_dashboard import ARGS, ARTIFACTS, CHROMIUM, _need_browser

from batchscore.service import ServiceConfig, create_app
from batchscore.state.events import Event, record_events


@pytest.fixture
def server(ws):
    with serve_in_thread(create_app(ws, ServiceConfig(background=False))) as url:
        yield url


def event(kind: str, state: str, subject: str, severity: str, message: str, at: float) -> Event:
    return Event(source="serving", kind=kind, severity=severity, state=state, subject=subject,
                 message=message, details={"window_s": 60}, created_at=at)


def test_events_panel_in_headless_chromium(ws, server):
    _need_browser()
    from playwright.sync_api import sync_playwright

    now = time.time()
    failing, slow, back = record_events(ws.engine, [
        event("error_rate", "raised", "diabetes/3", "critical",
              "5xx error rate 12.5% over the last 60 s (15 of 120 requests), above 5.0%",
              now - 30),
        event("latency", "raised", "churn/1", "warning",
              "p95 latency 412 ms over the last 60 s (140 requests), 8.1x the baseline 51 ms",
              now - 20),
        event("latency", "resolved", "churn/1", "info",
              "p95 latency 50 ms over the last 60 s (150 requests), 1.0x the baseline 51 ms: "
              "back to normal (after 10s)", now - 10),
    ])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(_remember_token(ws))  # as a user pastes it
            page.goto(f"{server}/dashboard/")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            assert page.locator("#events tbody tr").count() == 3
            assert page.locator("#events-summary").inner_text() == "1 anomaly going on"
            ongoing = page.locator("#ongoing li")
            assert ongoing.count() == 1
            banner = ongoing.inner_text()
            assert "diabetes/3 · error_rate" in banner and "12.5%" in banner
            assert "sev-critical" in (ongoing.get_attribute("class") or "")

            row = page.locator(f"#events tr[data-event='{failing.id}']")
            assert "ongoing" in (row.get_attribute("class") or "").split()
            cells = row.locator("td").all_inner_texts()
            assert cells[1:] == ["critical", "serving", "diabetes/3", "error_rate", "ongoing",
                                 failing.message]
            assert "sev-critical" in (row.locator("td").nth(1).get_attribute("class") or "")
            background = row.evaluate("r => getComputedStyle(r).backgroundColor")
            plain = page.locator(f"#events tr[data-event='{slow.id}']")
            assert background != plain.evaluate("r => getComputedStyle(r).backgroundColor")
            for quiet in (slow, back):  # churn/1 is resolved: not ongoing, not on top
                classes = page.locator(f"#events tr[data-event='{quiet.id}']").get_attribute(
                    "class") or ""
                assert "ongoing" not in classes.split()
            assert page.locator(f"#events tr[data-event='{back.id}'] td").nth(5).inner_text(
                ) == "resolved"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-events.png"), full_page=True)

            # the anomaly ends: the page shows it at its next refresh, without a reload
            record_events(ws.engine, [event(
                "error_rate", "resolved", "diabetes/3", "info",
                "5xx error rate 0.0% over the last 60 s (0 of 130 requests): back to normal "
                "(after 40s)", now)])
            page.wait_for_function(
                "document.querySelectorAll('#events tbody tr').length === 4", timeout=20_000)
            assert page.locator("#ongoing li").count() == 0
            assert page.locator("#events-summary").inner_text() == "nothing going on"
            assert page.locator("#events tr.ongoing").count() == 0
        finally:
            browser.close()


def _remember_token(ws) -> str:
    """A page script that keeps the local admin token where the dashboard looks for it."""
    token = (ws.settings.root / "service" / "admin.token").read_text().strip()
    return f"localStorage.setItem('batchscore-token', {token!r});"
