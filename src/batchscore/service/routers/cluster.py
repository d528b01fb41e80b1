"""``GET /api/v1/cluster`` (viewer): the executor in use, its machines and what batchscore
runs on each (issue 19; computed by :func:`batchscore.jobs.cluster.cluster_status`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ...jobs.cluster import cluster_status
from ..context import ws_of
from ..deps import Viewer

__all__ = ["Cluster", "router"]

router = APIRouter()


class Resources(BaseModel):
    cpus: float = Field(description="Logical CPUs the node offers to Ray.")
    gpus: float = Field(description="GPUs the node offers to Ray.")
    memory_bytes: int = Field(description="Memory Ray may give tasks and actors, in bytes.")


class NodeWorker(BaseModel):
    worker: str = Field(description="host:pid, as the attempts table names it.")
    state: Literal["alive", "dead"]
    job_id: str | None = Field(description="The latest job it scored a mini-batch of.")
    minibatches_done: int = Field(description="Mini-batches of that job it scored.")


class Rerun(BaseModel):
    job_id: str
    minibatch: int | None
    worker: str = Field(description="The worker on the node whose mini-batch was run again.")
    attempt: int | None = Field(description="The attempt that died (none when requeued).")
    how: Literal["died", "requeued"] = Field(
        description="died: an attempt counted; requeued: run again uncounted.")


class Node(BaseModel):
    node_id: str
    address: str
    hostname: str
    state: Literal["alive", "dead", "lost"] = Field(
        description="lost: it died while its workers had mini-batches in flight.")
    head: bool
    resources: Resources
    workers: list[NodeWorker]
    reruns: list[Rerun] = Field(description="Mini-batches run again because the node died.")


class LocalWorker(BaseModel):
    worker: str | None = Field(description="host:pid of the worker process.")
    runner: str | None = Field(description="host:pid of the job's runner.")
    job_id: str
    state: str = Field(description="The process state (running, sleeping, zombie...); "
                       "elsewhere: the runner is on another machine; runner-gone.")
    pid: int | None


class Cluster(BaseModel):
    executor: str = Field(description="local or ray.")
    address: str | None = Field(description="executor.ray_address (Ray).")
    nodes: list[Node] = Field(description="Ray's nodes, alive first.")
    workers: list[LocalWorker] = Field(description="The local executor's worker processes.")
    note: str | None = None


@router.get("/cluster", tags=["service"], response_model=Cluster)
async def cluster(request: Request, who: Viewer) -> Cluster:
    """The executor in use and its machines: for Ray every node (address, state, CPUs, GPUs,
    memory, batchscore's workers and a lost node's re-run mini-batches); for the local
    executor the worker processes of the running jobs."""
    ws = ws_of(request)
    return Cluster.model_validate(await run_in_threadpool(cluster_status, ws))
