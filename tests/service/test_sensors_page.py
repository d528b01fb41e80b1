"""dashboard/sensors.html in a real headless Chromium over a real tabular job's output: one
chart per (Device, Sensor), one red mark per anomaly, the counts, the token, and errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from svc_helpers import serve_in_thread
from test_dashboard import ARGS, ARTIFACTS, CHROMIUM, _need_browser
from test_outputs_api import sensor_input, sensor_models, sensor_spec

from batchscore.jobs import run_job
from batchscore.service import ServiceConfig, create_app, create_token


@pytest.fixture
def server(ws):
    with serve_in_thread(create_app(ws, ServiceConfig(background=False, auth="always"))) as url:
        yield url


def test_sensors_page_in_headless_chromium(ws, tmp_path: Path, server):
    _need_browser()
    from playwright.sync_api import sync_playwright

    data, frame = sensor_input(tmp_path / "in", per_group=60)
    sensor_models(tmp_path / "models", frame)
    job = run_job(ws, sensor_spec(tmp_path / "models"), [str(data)], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    # what the page must show, read straight from the job's Parquet parts
    out = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*")))
    flagged = out[out.prediction == -1].groupby(["Device", "Sensor"]).size()
    assert len(out) == 240 and flagged.sum() > 0
    _, viewer = create_token(ws.engine, "viewer", "viewer")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            # without a token the API refuses, and the page says so
            page.goto(f"{server}/dashboard/sensors.html?job={job.id}")
            page.wait_for_selector("body[data-loaded=error]", timeout=20_000)
            assert "401" in page.locator("#error").inner_text()
            # the token goes where app.js keeps it, and is sent as a Bearer header
            page.fill("#token", viewer)
            page.dispatch_event("#token", "change")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)

            figures = page.locator("figure.sensor")
            assert figures.count() == 4  # Devices 1-2 x Sensors 1 and 4
            assert page.locator("svg.sensor-chart polyline.values").count() == 4
            assert page.locator("circle.anomaly").count() == int(flagged.sum())
            for i in range(4):
                figure = figures.nth(i)
                device, sensor = (int(v) for v in figure.get_attribute("data-sensor")[1:-1]
                                  .split(","))
                want = int(flagged.get((device, sensor), 0))
                assert figure.locator("circle.anomaly").count() == want
                assert f"Device {device} · Sensor {sensor}: {want} anomalies of 60" in \
                    figure.locator("figcaption").inner_text()
                fill = figure.locator("circle.anomaly").first.evaluate(
                    "c => getComputedStyle(c).fill") if want else "rgb(211, 47, 47)"
                assert fill == "rgb(211, 47, 47)"  # red
            counts = page.locator("#counts tbody tr")
            assert counts.count() == 4
            assert f"{int(flagged.sum())} flagged as anomalies" in \
                page.locator("#summary").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "sensors.png"), full_page=True)

            # no ?job: the latest succeeded job of endpoint sensor-anomaly
            page.goto(f"{server}/dashboard/sensors.html")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            assert job.id in page.locator("#job-id").inner_text()
            assert page.locator("figure.sensor").count() == 4

            page.goto(f"{server}/dashboard/sensors.html?endpoint=no-such-endpoint")
            page.wait_for_selector("body[data-loaded=error]", timeout=20_000)
            assert "no succeeded job of endpoint no-such-endpoint" in \
                page.locator("#error").inner_text()
            page.goto(f"{server}/dashboard/sensors.html?job=nosuchjob")
            page.wait_for_selector("body[data-loaded=error]", timeout=20_000)
            assert "404: no job with id 'nosuchjob'" in page.locator("#error").inner_text()
            page.goto(f"{server}/dashboard/sensors.html?job={job.id}&value=Humidity")
            page.wait_for_selector("body[data-loaded=error]", timeout=20_000)
            assert "no column(s) Humidity" in page.locator("#error").inner_text()
            # the jobs page links here
            page.goto(f"{server}/dashboard/")
            assert page.locator("header nav a[href='sensors.html']").count() == 1
        finally:
            browser.close()
    assert (ARTIFACTS / "sensors.png").stat().st_size > 10_000
