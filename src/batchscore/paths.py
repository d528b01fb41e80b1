"""The system store's layout: where batchscore keeps each thing, spelled once.

Every path is relative to the system store (outside users never write there)::

    jobs/<id>/
        code/                       the entry script's code, shipped at the job's start
                                    (``.complete`` once whole)
        parts/<idx // 1000>/<idx>-<attempt><suffix>
                                    one part per finished mini-batch attempt, in folders of
                                    PARTS_PER_FOLDER so that no folder grows with the job
        staging/                    AZUREML_BI_OUTPUT_PATH of the workers (local system store)
        tabular.json                the model version a tabular job pinned at its start
        logs/
            overview.json  events.jsonl  errors.txt  timings.jsonl
            rejected_rows.csv       the rows a tabular job's model could not take
            workers/<worker>.stdout.txt, .stderr.txt
            progress/<idx>-<attempt>.json      a running attempt's items done
            frames/<idx>-<attempt>.jsonl       a video attempt's per-batch frame timings
    scripts/<sha256>/               a script bundle submitted to the service (code/, model/)
    snapshots/<sha256>/result.parquet          a SQL input's result, content-addressed

``<idx>`` is the mini-batch's index in eight digits, ``<attempt>`` its attempt number
(:func:`attempt_name`). Functions that take a ``log_prefix`` or ``parts_prefix`` are the ones a
worker calls: it knows the prefixes (``WorkerConfig``), not the layout above them.
"""

from __future__ import annotations

__all__ = [
    "ERRORS",
    "EVENTS",
    "OVERVIEW",
    "PARTS_PER_FOLDER",
    "TIMINGS",
    "attempt_name",
    "frames_dir",
    "frames_file",
    "job_code",
    "job_dir",
    "job_logs",
    "job_parts",
    "job_staging",
    "model_pin",
    "part_path",
    "progress_file",
    "rejected_rows",
    "script_bundle",
    "sql_snapshot",
    "workers_dir",
]

PARTS_PER_FOLDER = 1000
# the files of a job's logs folder (batchscore.jobs.logs writes them)
OVERVIEW = "overview.json"
EVENTS = "events.jsonl"
ERRORS = "errors.txt"
TIMINGS = "timings.jsonl"


def job_dir(job_id: str) -> str:
    """Everything of one job: ``jobs/<id>``."""
    return f"jobs/{job_id}"


def job_logs(job_id: str) -> str:
    """``jobs/<id>/logs``: the job's logs (see the module's layout)."""
    return f"{job_dir(job_id)}/logs"


def job_code(job_id: str) -> str:
    """``jobs/<id>/code``: the entry script's code, as the job's workers load it."""
    return f"{job_dir(job_id)}/code"


def job_parts(job_id: str) -> str:
    """``jobs/<id>/parts``: the mini-batches' parts (:func:`part_path`)."""
    return f"{job_dir(job_id)}/parts"


def job_staging(job_id: str) -> str:
    """``jobs/<id>/staging``: the workers' output folder on a local system store."""
    return f"{job_dir(job_id)}/staging"


def model_pin(job_id: str) -> str:
    """``jobs/<id>/tabular.json``: the model version a tabular job scores with."""
    return f"{job_dir(job_id)}/tabular.json"


def rejected_rows(job_id: str) -> str:
    """``jobs/<id>/logs/rejected_rows.csv``: every row a tabular job rejected, with why."""
    return f"{job_logs(job_id)}/rejected_rows.csv"


def attempt_name(idx: int, attempt: int) -> str:
    """``00012345-2``: how files of one attempt of one mini-batch are named."""
    return f"{idx:08d}-{attempt}"


def part_path(parts_prefix: str, idx: int, attempt: int, suffix: str) -> str:
    """Where mini-batch ``idx``'s part goes: folders of :data:`PARTS_PER_FOLDER` parts
    (``parts/00012/00012345-1.txt``), so that no folder grows with the size of the job."""
    return f"{parts_prefix}/{idx // PARTS_PER_FOLDER:05d}/{attempt_name(idx, attempt)}{suffix}"


def workers_dir(log_prefix: str) -> str:
    """Where each worker's stdout and stderr go."""
    return f"{log_prefix}/workers"


def progress_file(log_prefix: str, idx: int, attempt: int) -> str:
    """Where a running attempt says how many of its items are done."""
    return f"{log_prefix}/progress/{attempt_name(idx, attempt)}.json"


def frames_dir(log_prefix: str) -> str:
    """A video job's per-batch frame timings, one file per attempt."""
    return f"{log_prefix}/frames"


def frames_file(log_prefix: str, name: str) -> str:
    """The frame timings of the attempt ``name`` (:func:`attempt_name`)."""
    return f"{frames_dir(log_prefix)}/{name}.jsonl"


def script_bundle(digest: str) -> str:
    """``scripts/<sha256>``: a script bundle, kept once however often it is submitted."""
    return f"scripts/{digest}"


def sql_snapshot(digest: str) -> str:
    """``snapshots/<sha256>/result.parquet``: the result of a SQL input's query."""
    return f"snapshots/{digest}/result.parquet"
