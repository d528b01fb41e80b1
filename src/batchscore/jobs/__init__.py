"""Batch jobs: specs, planning into mini-batches, the runner, executors, outputs and logs."""

from .control import (
    JobLogView,
    cancel_job,
    failure,
    get_job,
    job_logs,
    list_jobs,
    list_minibatches,
    resume_job,
    run_job,
    submit_job,
)
from .runner import ProgressSnapshot
from .spec import JobSpec, RetrySettings, load_spec, spec_from_mapping

__all__ = [
    "JobLogView",
    "JobSpec",
    "ProgressSnapshot",
    "RetrySettings",
    "cancel_job",
    "failure",
    "get_job",
    "job_logs",
    "list_jobs",
    "list_minibatches",
    "load_spec",
    "resume_job",
    "run_job",
    "spec_from_mapping",
    "submit_job",
]
