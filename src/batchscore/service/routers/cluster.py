"""``GET /api/v1/cluster`` (viewer): the executor in use, its machines and what batchscore
runs on each (issue 19; computed by :func:`batchscore.jobs.cluster.cluster_status`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ...apimodels import Cluster
from ...jobs.cluster import cluster_status
from ..context import ws_of
from ..deps import Viewer

__all__ = ["router"]

router = APIRouter()


@router.get("/cluster", tags=["service"], response_model=Cluster)
async def cluster(request: Request, who: Viewer) -> Cluster:
    """The executor in use and its machines: for Ray every node (address, state, CPUs, GPUs,
    memory, batchscore's workers and a lost node's re-run mini-batches); for the local
    executor the worker processes of the running jobs."""
    ws = ws_of(request)
    return Cluster.model_validate(await run_in_threadpool(cluster_status, ws))
