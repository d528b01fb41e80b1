"""One router per resource of the REST API under ``/api/v1``; :data:`API` lists them in the
order the OpenAPI document shows them. Routers reach the service through :mod:`..context` and
decide who may call them through :mod:`..deps`, never through the app."""

from __future__ import annotations

from fastapi import APIRouter

from . import (
    cluster,
    connections,
    data,
    deployments,
    endpoints,
    events,
    jobs,
    outputs,
    pipelines,
    runs,
    streams,
    tokens,
    triggers,
    video_report,
)

__all__ = ["API"]

API: tuple[APIRouter, ...] = (
    pipelines.router, runs.router, jobs.router, triggers.router, tokens.router, data.router,
    endpoints.router, deployments.router, outputs.router, streams.router, events.router,
    connections.router, video_report.router, cluster.router,
)
