"""Published pipelines and their runs: the catalog (found by name) and the run lifecycle.

A **pipeline** (:class:`Pipeline`, :mod:`.contract`) is a name, a parameters model and the
job that a run of it becomes; each definition lives in its domain (``video-style`` in
:mod:`batchscore.video.published`, ``train-evaluate-register`` in
:mod:`batchscore.mlops.published`, ``batch-endpoint`` and ``batch-job`` in
:mod:`batchscore.endpoints.published`) and :mod:`.catalog` finds it by name. A **pipeline run**
is a durable row (:mod:`batchscore.state.runs`, its only writer) that points at the batch job
it started; :mod:`.lifecycle` requests, claims, executes and cancels runs. Every path a run
names lies inside the workspace's data store (:mod:`.datastore`).

This package imports no domain: the domains import :mod:`.contract` and :mod:`.datastore`.
"""

from ..state.runs import RUN_STATES, Run, RunNotFoundError, get_run, list_runs
from .catalog import PIPELINES, get_pipeline, pipeline_definition, validate_params
from .contract import Pipeline, PipelineNotFoundError, Plan, submit_and_attach
from .datastore import data_url, resolve_data_path
from .lifecycle import cancel_run, claim_run, execute_queued, execute_run, request_run

__all__ = [
    "PIPELINES",
    "RUN_STATES",
    "Pipeline",
    "PipelineNotFoundError",
    "Plan",
    "Run",
    "RunNotFoundError",
    "cancel_run",
    "claim_run",
    "data_url",
    "execute_queued",
    "execute_run",
    "get_pipeline",
    "get_run",
    "list_runs",
    "pipeline_definition",
    "request_run",
    "resolve_data_path",
    "submit_and_attach",
    "validate_params",
]
