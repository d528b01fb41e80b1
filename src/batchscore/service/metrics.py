"""``/metrics`` in the Prometheus text format, read from the state database at each scrape."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ..pipelines import RUN_STATES
from ..state.tables import jobs, minibatches, pipeline_runs
from ..workspace import Workspace

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WINDOW_S = 60.0
JOB_STATES = ("queued", "running", "succeeded", "failed", "canceled")


class _StateCollector(Collector):
    def __init__(self, ws: Workspace, workers: Callable[[], int]) -> None:
        self.ws, self.workers = ws, workers

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        with self.ws.engine.connect() as conn:
            job_counts = dict(conn.execute(
                select(jobs.c.state, func.count()).group_by(jobs.c.state)).all())
            mb_counts = dict(conn.execute(
                select(minibatches.c.state, func.count()).group_by(minibatches.c.state)).all())
            run_counts = dict(conn.execute(
                select(pipeline_runs.c.state, func.count())
                .group_by(pipeline_runs.c.state)).all())
            recent = conn.execute(
                select(func.coalesce(func.sum(minibatches.c.items_succeeded), 0))
                .where(minibatches.c.finished_at >= now - WINDOW_S)).scalar_one()
            busy_workers = conn.execute(
                select(func.count(func.distinct(minibatches.c.worker)))
                .where(minibatches.c.state == "running")).scalar_one()
        g = GaugeMetricFamily("batchscore_jobs", "Jobs by state.", labels=["state"])
        for state in JOB_STATES:
            g.add_metric([state], job_counts.get(state, 0))
        yield g
        g = GaugeMetricFamily("batchscore_pipeline_runs", "Pipeline runs by state.",
                              labels=["state"])
        for state in RUN_STATES:
            g.add_metric([state], run_counts.get(state, 0))
        yield g
        g = GaugeMetricFamily("batchscore_minibatches", "Mini-batches by state.",
                              labels=["state"])
        for state in ("pending", "running", "done", "failed"):
            g.add_metric([state], mb_counts.get(state, 0))
        yield g
        yield GaugeMetricFamily("batchscore_minibatches_done", "Mini-batches done.",
                                value=mb_counts.get("done", 0))
        yield GaugeMetricFamily("batchscore_minibatches_failed", "Mini-batches failed.",
                                value=mb_counts.get("failed", 0))
        yield GaugeMetricFamily("batchscore_items_per_second",
                                f"Items scored per second over the last {WINDOW_S:.0f}s.",
                                value=float(recent) / WINDOW_S)
        yield GaugeMetricFamily(
            "batchscore_queue_depth", "Queued pipeline runs plus pending mini-batches.",
            value=run_counts.get("queued", 0) + mb_counts.get("pending", 0))
        yield GaugeMetricFamily("batchscore_workers",
                                "Workers running a mini-batch now.", value=busy_workers)
        yield GaugeMetricFamily("batchscore_run_slots_busy",
                                "Run slots of this service executing a run.",
                                value=self.workers())


def render_metrics(ws: Workspace, busy_slots: Callable[[], int]) -> bytes:
    registry = CollectorRegistry()
    registry.register(_StateCollector(ws, busy_slots))
    return generate_latest(registry)
