"""What a published pipeline is, for the domains that define one (``video``, ``mlops``, ...).

A **pipeline** is a name, a parameters model and what a run of it does: either its
:meth:`Pipeline.plan` becomes one batch job (the run lifecycle submits it, attaches it to the
run and runs it to its end, resuming it after a restart), or :meth:`Pipeline.execute` carries
the run out itself (``train-evaluate-register``: data tests, training and evaluation are not a
batch job). Definitions live in their domains and are found by name
(:mod:`batchscore.pipelines.catalog`), so the catalog imports no domain, as ``jobs`` finds job
kinds. :func:`submit_and_attach` is the one way a job is submitted together with a new run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from ..errors import PipelineNotFoundError, SpecError
from ..jobs.control import submit_job
from ..state import runs
from ..state.jobs import Job
from ..workspace import Workspace

if TYPE_CHECKING:
    from ..jobs.spec import JobSpec

__all__ = ["Attached", "Pipeline", "PipelineNotFoundError", "Plan", "submit_and_attach"]


@dataclass(frozen=True)
class Plan:
    """What a run turns into: a job spec, its inputs and its output (URLs)."""

    spec: JobSpec
    inputs: list[str]
    output: str


class Pipeline(ABC):
    """A published pipeline. ``role`` is what the REST API asks of a caller starting a run;
    ``sample_input`` the file name a storage trigger's parameters are checked with (a trigger
    sets ``input`` to each new blob); an unpublished pipeline (``published`` False) is not
    listed and cannot be started by name: only the service records its runs; a pipeline with
    ``quality_report`` writes a video quality report and contact sheet beside its output."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[type[BaseModel]]
    role: ClassVar[str] = "operator"
    sample_input: ClassVar[str] = "input"
    published: ClassVar[bool] = True
    quality_report: ClassVar[bool] = False

    def validate(self, ws: Workspace, raw: dict[str, Any]) -> BaseModel:
        """The parameters, validated (types, ranges, paths), or :class:`SpecError`."""
        try:
            model = self.params.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'parameters'}: {e['msg']}"
                for e in exc.errors())
            raise SpecError(f"pipeline {self.name!r}: {problems}") from None
        self.check(ws, model)
        return model

    @abstractmethod
    def check(self, ws: Workspace, params: Any) -> None:
        """Refuse bad parameters (paths outside the data store, ...) before a run is recorded."""

    def source(self, params: Any) -> str | None:
        """The one data-store file a run reads, checked to exist when the run is asked for
        (None: nothing to check, such as a pattern)."""
        value = getattr(params, "input", None)
        if not isinstance(value, str) or any(c in value for c in "*?["):
            return None
        return value

    def plan(self, ws: Workspace, params: Any, run_id: str) -> Plan | None:
        """The batch job a run becomes; None when :meth:`execute` carries the run out."""
        return None

    def execute(self, ws: Workspace, params: Any, run_id: str) -> tuple[str, str | None]:
        """Carry a run out without a batch job; returns its final state and reason."""
        raise NotImplementedError(f"pipeline {self.name!r} neither plans a job nor executes")


@dataclass(frozen=True)
class Attached:
    job: Job
    run: runs.Run
    job_created: bool  # False: the same job was submitted before and is unfinished
    run_created: bool  # False: ``run`` is that job's unfinished run, or the run_key's


def submit_and_attach(ws: Workspace, pipeline: str, plan: Plan,
                      params: Callable[[Job], dict[str, Any]], *, overwrite: bool = False,
                      run_key: str | None = None, created_by: str | None = None,
                      shown_output: str | None = None) -> Attached:
    """Submit ``plan``'s job and record a queued run of ``pipeline`` executing it, with
    ``params(job)`` as its parameters. The same job submitted again while it is unfinished
    and queued or running returns that job and its run; a ``run_key`` that is taken returns
    the run recorded under it. ``shown_output``: the output the run shows, when not the job's
    (a registered connection's name rather than its URL)."""
    job, created = submit_job(ws, plan.spec, plan.inputs, plan.output, overwrite=overwrite)
    if not created:
        existing = runs.run_of_job(ws.engine, job.id)
        if existing is not None:
            return Attached(job, existing, False, False)
    try:
        with ws.engine.begin() as conn:
            run = runs.create_run(conn, pipeline, params(job), run_key=run_key,
                                  created_by=created_by, job_id=job.id,
                                  output_url=shown_output or job.output_url)
    except IntegrityError:  # another caller recorded the same run_key first
        taken = runs.run_by_key(ws.engine, run_key) if run_key else None
        if taken is None:
            raise
        return Attached(job, taken, created, False)
    return Attached(job, run, created, True)
