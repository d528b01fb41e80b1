"""How records are shown to API clients: their locations as data-store paths (never the
service's own folders), system-store paths as ``system:...``, passwords and environment
values hidden. The routers of runs, jobs, pipelines and triggers share these."""

from __future__ import annotations

from typing import Any

from .. import jobs as job_api
from ..jobs.control import items_in_progress
from ..redact import hide_environment, public_text, public_value
from ..workspace import Workspace
from .submit import store_locations

__all__ = ["job_record", "job_summary", "job_view", "run_links",
           "run_view", "with_job"]


def run_view(ws: Workspace, run: Any) -> dict[str, Any]:
    """A run as API clients see it: its locations as data-store paths (never the service's
    own folders), passwords hidden."""
    stores = store_locations(ws)
    data = run.to_dict()
    data["params"] = public_value(data["params"], stores)
    data["output_url"] = public_value(data["output_url"], stores)
    data["reason"] = public_text(data["reason"], stores) if data["reason"] else data["reason"]
    return data


def run_links(run_id: str) -> dict[str, str]:
    return {"self": f"/api/v1/runs/{run_id}", "output": f"/api/v1/runs/{run_id}/output"}


def with_job(ws: Workspace, run: dict[str, Any]) -> dict[str, Any]:
    """``run`` (a :func:`run_view`) with its job's summary (or None) as ``job``."""
    if run["job_id"]:
        job = job_api.get_job(ws, run["job_id"])
        run["job"] = job_summary(ws, job)
    else:
        run["job"] = None
    return run


def job_record(ws: Workspace, job: Any) -> dict[str, Any]:
    """A job as API clients see it (:class:`~.schemas.JobRecord`)."""
    data: dict[str, Any] = hide_environment(job.public_dict(store_locations(ws)))
    return data


def job_view(ws: Workspace, job: Any) -> dict[str, Any]:
    data = job_record(ws, job)
    data["items_in_progress"] = items_in_progress(ws, job)
    return data


def job_summary(ws: Workspace, job: Any) -> dict[str, Any]:
    data = job_view(ws, job)
    data.pop("spec", None)
    return data
