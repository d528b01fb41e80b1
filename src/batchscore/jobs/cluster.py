"""The machines that run jobs, and what batchscore runs on each (issue 19).

:func:`cluster_status` answers the workspace's executor and, for Ray, every node of the cluster
(address, alive or dead, CPUs, GPUs, memory), batchscore's workers on it (its ``_Worker``
actors, named ``host:pid`` as in the attempts table) and the mini-batches they ran; a node that
died while its workers had mini-batches in flight is **lost**, with the mini-batches that were
run again because of it (``died`` attempts of its workers in the attempts table, and the
``requeued`` events that name them in the jobs' logs). For the local executor: the worker
processes of the jobs running on this machine and their state.

The answer is the JSON shape of ``GET /api/v1/cluster`` (plain dicts, lists, numbers)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ..state.tables import attempts, jobs
from ..workspace import Workspace

__all__ = ["WORKER_ACTOR", "cluster_status"]

WORKER_ACTOR = "_Worker"  # the class of batchscore's Ray actors (jobs/executors/ray.py)
RECENT_JOBS = 20  # jobs whose logs are read for the mini-batches requeued off a lost node


def cluster_status(ws: Workspace) -> dict[str, Any]:
    """The executor in use and its machines: see the module's text."""
    if ws.settings.executor == "ray":
        return _ray_status(ws)
    return _local_status(ws)


# -- Ray -----------------------------------------------------------------------------------


def _ray_status(ws: Workspace) -> dict[str, Any]:
    from .executors.ray import _connect, import_ray

    ray = import_ray()
    address = ws.settings.ray_address
    out: dict[str, Any] = {"executor": "ray", "address": address, "nodes": [], "workers": [],
                           "note": None}
    if not ray.is_initialized():
        if not address:
            out["note"] = ("executor.ray_address is not set: each job starts a Ray instance of "
                           "its own, and none runs now")
            return out
        _connect(ray, address, 0)
    actors = _worker_actors(ray)
    if actors is None:
        out["note"] = "Ray does not list its actors here (a ray:// client): no workers shown"
        actors = []
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for actor in actors:
        by_node[actor["node_id"]].append(actor)
    nodes = [_node(raw, by_node.get(raw.get("NodeID", ""), [])) for raw in ray.nodes()]
    _attach_attempts(ws, nodes)
    if any(n["state"] == "dead" and n["workers"] for n in nodes):
        _attach_requeued(ws, nodes)
    for node in nodes:
        if node["state"] == "dead" and node["reruns"]:
            node["state"] = "lost"
    out["nodes"] = sorted(nodes, key=lambda n: (n["state"] != "alive", n["address"]))
    return out


def _worker_actors(ray: Any) -> list[dict[str, Any]] | None:
    """batchscore's worker actors, alive and dead, from the GCS actor table (the state API
    of ``ray.util.state`` would need the Ray dashboard, which clusters often run without)."""
    try:
        from ray._private import state as ray_state

        table = ray_state.actors()
    except Exception:  # a ray:// client, or another Ray version's layout
        return None
    found = []
    for info in table.values():
        if info.get("ActorClassName", "").rpartition(".")[2] != WORKER_ACTOR:
            continue
        found.append({"node_id": info.get("Address", {}).get("NodeID", ""),
                      "pid": int(info.get("Pid") or 0),
                      "state": "alive" if info.get("State") == "ALIVE" else "dead"})
    return found


def _node(raw: dict[str, Any], actors: list[dict[str, Any]]) -> dict[str, Any]:
    res = raw.get("Resources") or {}
    host = raw.get("NodeManagerHostname") or raw.get("NodeManagerAddress") or "?"
    workers = [{"worker": f"{host}:{a['pid']}", "state": a["state"], "job_id": None,
                "minibatches_done": 0} for a in actors if a["pid"]]
    return {
        "node_id": raw.get("NodeID", ""),
        "address": raw.get("NodeManagerAddress", ""),
        "hostname": host,
        "state": "alive" if raw.get("Alive") else "dead",
        "head": any(k.startswith("node:__internal_head__") for k in res),
        "resources": {"cpus": float(res.get("CPU", 0.0)), "gpus": float(res.get("GPU", 0.0)),
                      "memory_bytes": int(res.get("memory", 0))},
        "workers": sorted(workers, key=lambda w: (w["state"] != "alive", w["worker"])),
        "reruns": [],
    }


def _attach_attempts(ws: Workspace, nodes: list[dict[str, Any]]) -> None:
    """Each worker's latest job and its mini-batches done; a dead node's ``died`` attempts."""
    where = {w["worker"]: (node, w) for node in nodes for w in node["workers"]}
    if not where:
        return
    names = list(where)
    with ws.engine.connect() as conn:
        done = conn.execute(
            select(attempts.c.worker, attempts.c.job_id, func.count(), func.max(attempts.c.id))
            .where(attempts.c.worker.in_(names), attempts.c.outcome == "ok")
            .group_by(attempts.c.worker, attempts.c.job_id)).all()
        died = conn.execute(
            select(attempts.c.worker, attempts.c.job_id, attempts.c.idx, attempts.c.attempt)
            .where(attempts.c.worker.in_(names), attempts.c.outcome == "died")
            .order_by(attempts.c.id)).all()
    latest: dict[str, int] = {}
    for worker, job_id, count, last in done:
        _, entry = where[worker]
        if last > latest.get(worker, -1):
            latest[worker] = last
            entry["job_id"], entry["minibatches_done"] = job_id, int(count)
    for worker, job_id, idx, attempt in died:
        node, _ = where[worker]
        if node["state"] == "dead":
            node["reruns"].append({"job_id": job_id, "minibatch": int(idx), "worker": worker,
                                   "attempt": int(attempt), "how": "died"})


def _attach_requeued(ws: Workspace, nodes: list[dict[str, Any]]) -> None:
    """Mini-batches in flight on a dead node's workers that the runner put back in the
    queue, uncounted (``requeued`` events: "the Ray node of worker W was lost")."""
    from .control import job_logs

    dead = {w["worker"]: node for node in nodes if node["state"] == "dead"
            for w in node["workers"]}
    with ws.engine.connect() as conn:
        recent = conn.execute(select(jobs.c.id).order_by(jobs.c.created_at.desc())
                              .limit(RECENT_JOBS)).scalars().all()
    for job_id in recent:
        events: list[dict[str, Any]] = []
        with contextlib.suppress(Exception):  # a job whose logs are gone
            events = job_logs(ws, job_id).events
        for event in events:
            if event.get("event") != "requeued":
                continue
            reason = str(event.get("reason", ""))
            for worker, node in dead.items():
                if f"worker {worker} " in reason:
                    node["reruns"].append({"job_id": job_id, "minibatch": event.get("minibatch"),
                                           "worker": worker, "attempt": None,
                                           "how": "requeued"})


# -- the local executor ---------------------------------------------------------------------


def _local_status(ws: Workspace) -> dict[str, Any]:
    """The worker processes of the running jobs whose runner is a process of this machine."""
    import psutil

    here = socket.gethostname()
    with ws.engine.connect() as conn:
        running = conn.execute(select(jobs.c.id, jobs.c.runner)
                               .where(jobs.c.state == "running")).all()
    workers: list[dict[str, Any]] = []
    for job_id, runner in running:
        host, _, pid = (runner or "").rpartition(":")
        if host != here or not pid.isdigit():
            workers.append({"worker": None, "runner": runner, "job_id": job_id,
                            "state": "elsewhere", "pid": None})
            continue
        try:
            children = _workers_of(psutil.Process(int(pid)), job_id)
        except psutil.Error:
            workers.append({"worker": None, "runner": runner, "job_id": job_id,
                            "state": "runner-gone", "pid": int(pid)})
            continue
        for child in children:
            with contextlib.suppress(psutil.Error):
                workers.append({"worker": f"{here}:{child.pid}", "runner": runner,
                                "job_id": job_id, "state": child.status(), "pid": child.pid})
    return {"executor": ws.settings.executor, "address": None, "nodes": [],
            "workers": workers, "note": None}


def _workers_of(runner: Any, job_id: str) -> list[Any]:
    """The runner's worker processes of job ``job_id``: its children in its own session (a
    deployment's supervisor or a Ray node it started leads a session of its own), less
    multiprocessing's resource tracker, and the children of its fork server (the service's
    jobs start their workers from it). One process runs several jobs (the service's run
    slots): a worker's stdout is its log file, in its job's folder. A child whose log lies in
    another job's folder is that job's; a fork server's child counts once its log is in this
    job's folder (the server outlives the jobs it served)."""
    session = os.getsid(runner.pid)
    found = []
    for child in runner.children():
        with contextlib.suppress(Exception):
            if os.getsid(child.pid) != session:
                continue
            cmdline = " ".join(child.cmdline())
            if "resource_tracker" in cmdline:
                continue
            if "multiprocessing.forkserver" in cmdline:
                found.extend(w for w in child.children() if _logs_in(w, job_id) is True)
            elif _logs_in(child, job_id) is not False:
                found.append(child)
    return found


def _logs_in(worker: Any, job_id: str) -> bool | None:
    """Whether ``worker``'s stdout is a worker log in ``job_id``'s folder; None: not known
    (no log open yet, or a process that is not ours to look at)."""
    try:
        stdout = next((f.path for f in worker.open_files() if f.fd == 1), None)
    except Exception:  # gone, or not ours to look at
        return None
    if stdout is None or not Path(stdout).name.startswith("worker-"):
        return None
    return job_id in Path(stdout).parts
