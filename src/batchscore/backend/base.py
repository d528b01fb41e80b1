"""What the backends share: the interface (:class:`Backend`), the way a long operation
reports (:class:`Reporter`), the requests of the commands with many options, and a job's
progress from its JSON."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..jobs.runner import ProgressCallback, ProgressSnapshot

if TYPE_CHECKING:
    from ..jobs.spec import JobSpec

__all__ = [
    "FINISHED",
    "JSON",
    "Backend",
    "EndpointRequest",
    "Reporter",
    "StylizeRequest",
    "snapshot",
]

JSON = dict[str, Any]
FINISHED = ("succeeded", "failed", "canceled")


class Reporter(Protocol):
    """Where a long operation says what happens: the command's output, its remarks (stderr)
    and a progress display of mini-batches (or of a video's frames)."""

    def say(self, text: str) -> None: ...

    def note(self, text: str) -> None: ...

    def bar(self, frames: bool = False) -> AbstractContextManager[ProgressCallback]: ...


@dataclass(frozen=True)
class EndpointRequest:
    """``endpoint create``'s options: one of ``model``, ``script`` or ``spec`` (or ``file``,
    or none of them: an endpoint without deployments)."""

    name: str | None
    file: Path | None = None
    model: str | None = None
    script: Path | None = None
    spec: Path | None = None
    group_by: list[str] | None = None
    keys: list[str] | None = None
    features: list[str] | None = None
    prediction: str | None = None
    model_dir: Path | None = None
    code: Path | None = None
    input_format: str | None = None
    description: str | None = None
    settings: JSON | None = None

    @property
    def chosen(self) -> list[str]:
        return [flag for flag, v in (("--model", self.model), ("--script", self.script),
                                     ("--spec", self.spec)) if v is not None]


@dataclass(frozen=True)
class StylizeRequest:
    """``video stylize``'s options."""

    input: Path
    output: Path
    style: str | None = None
    style_image: Path | None = None
    model_card: Path | None = None
    strength: float = 1.0
    max_size: int = 768
    workers: int = 2
    segment_frames: int | None = None
    batch_size: int = 4
    temporal_smoothing: bool = False
    device: str = "cpu"
    threads: int | None = None
    crf: int | None = None
    preset: str | None = None
    overwrite: bool = False
    report: bool = True
    executor: str | None = None
    ray_address: str | None = None


class Backend(Protocol):
    """Every operation of the CLI, here or through a service."""

    # the machines
    def cluster_status(self) -> JSON: ...

    # jobs
    def list_jobs(self, *, limit: int, state: str | None) -> list[JSON]: ...
    def get_job(self, job_id: str) -> JSON: ...
    def minibatches(self, job_id: str) -> list[JSON]: ...
    def job_progress(self, job_id: str) -> ProgressSnapshot: ...
    def job_logs(self, job_id: str) -> JSON: ...
    def cancel_job(self, job_id: str) -> JSON: ...
    def run_job(self, spec: JobSpec, inputs: list[str], output: str, *, overwrite: bool,
                wait: bool, executor: str | None, ray_address: str | None,
                report: Reporter) -> int: ...
    def resume_job(self, job_id: str, *, executor: str | None, ray_address: str | None,
                   report: Reporter) -> int: ...

    # pipelines and runs
    def list_pipelines(self) -> list[JSON]: ...
    def start_run(self, name: str, params: JSON, *, wait: bool, report: Reporter) -> JSON: ...
    def list_runs(self, *, state: str | None, limit: int) -> list[JSON]: ...
    def get_run(self, run_id: str) -> JSON: ...
    def cancel_run(self, run_id: str) -> JSON: ...

    # triggers
    def add_trigger(self, **fields: Any) -> JSON: ...
    def list_triggers(self) -> list[JSON]: ...
    def remove_trigger(self, name: str) -> None: ...

    # endpoints and deployments
    def create_endpoint(self, request: EndpointRequest, report: Reporter) -> None: ...
    def list_endpoints(self) -> list[JSON]: ...
    def get_endpoint(self, name: str) -> JSON: ...
    def delete_endpoint(self, name: str) -> None: ...
    def set_default_deployment(self, endpoint: str, deployment: str) -> None: ...
    def invoke_endpoint(self, name: str, inputs: list[str], output: str, *,
                        query: str | None, table: str | None, overwrite: bool,
                        deployment: str | None, wait: bool, report: Reporter,
                        env_manager: str | None = None) -> int: ...
    def create_deployment(self, endpoint: str, name: str, spec: JobSpec, *,
                          set_default: bool, description: str | None) -> JSON: ...
    def list_deployments(self, endpoint: str) -> list[JSON]: ...
    def get_deployment(self, endpoint: str, name: str) -> JSON: ...
    def delete_deployment(self, endpoint: str, name: str) -> None: ...
    def deployment_jobs(self, endpoint: str, name: str) -> list[JSON]: ...

    # streams
    def create_stream(self, name: str, **settings: Any) -> JSON: ...
    def list_streams(self) -> list[JSON]: ...
    def stream_status(self, name: str) -> JSON: ...
    def delete_stream(self, name: str, *, purge: bool) -> None: ...
    def stream_max_future(self, name: str) -> float: ...
    def send_events(self, name: str, events: list[JSON], *, source: str) -> int: ...

    # video
    def stylize(self, request: StylizeRequest, report: Reporter) -> None: ...


def snapshot(job: JSON, states: list[str]) -> ProgressSnapshot:
    """A job's progress from its JSON and its mini-batches' states."""
    return ProgressSnapshot(job["id"], job["state"], job["minibatches_total"],
                            states.count("done"), states.count("failed"),
                            job["items_total"], job["items_succeeded"], job["items_failed"],
                            job.get("items_in_progress", 0))
