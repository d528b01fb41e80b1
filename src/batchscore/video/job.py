"""The video style-transfer job kind: each segment of the input is one mini-batch.

The driver probes the input and plans it into segments; each worker loads the network once,
and for each segment decodes its frames, stylizes them in batches and encodes a chunk into the
system store; the runner retries a failed segment alone and resumes from finished ones; at the
end the chunks are joined packet by packet with the original audio copied untouched.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ..errors import InputError, JobStateError, OutputExistsError, SpecError
from ..jobs.control import run_job
from ..jobs.kinds import (
    CommitContext,
    JobKind,
    PartialProgress,
    Scorer,
    TaskResult,
    WorkerConfig,
    worker_name,
)
from ..jobs.plan import PlannedBatch
from ..jobs.runner import ProgressCallback
from ..jobs.spec import JobSpec
from ..jobs.threads import threads_per_worker
from ..models.arbitrary import compute_style_vector
from ..models.base import run_size
from ..models.onnx_image import load_model_card
from ..models.runtime import RuntimeOptions
from ..models.spec import model_from_spec
from ..paths import attempt_name, frames_file, job_logs, part_path
from ..state.jobs import Job
from ..storage import Store, expand_inputs, local_copy, to_url
from ..workspace import Workspace
from .encoding import EncoderSettings
from .join import join_chunks
from .probe import probe
from .quality import measure_video, report_paths, run_isolated, write_report
from .render import render_segment
from .segments import Segment, plan_segments
from .smoothing import SmoothingSettings

__all__ = ["DEFAULT_MAX_SIZE", "VideoKind", "report_settings", "segment_frames_for", "stylize_job",
           "video_spec"]

_SUFFIXES = (".mp4", ".m4v", ".mov")


DEFAULT_MAX_SIZE = 768
"""The network's long side unless told: the smallest size at which the median of the
measured styles keeps content 0.30 or more on the real clip (docs/video.md, "Choosing the
network size"; benchmarks/video_quality.py)."""

MIN_SEGMENT_FRAMES = 100
MAX_SEGMENT_FRAMES = 300


def segment_frames_for(frame_count: int, workers: int) -> int:
    """Frames per segment: about four segments per worker (for balance, and so that a retry
    or a resumed run redoes little), but none under MIN_SEGMENT_FRAMES unless that would
    leave a worker without one (every segment pays for opening the file, decoding from the
    keyframe before its first frame, and filling and draining its stages: a 132-frame clip
    on one worker took 16% longer in four segments than in one at 720p, 4% at 640x360,
    benchmarks/VIDEO.md), and none over MAX_SEGMENT_FRAMES."""
    workers = max(1, workers)
    balanced = math.ceil(frame_count / (4 * workers))
    one_each = math.ceil(frame_count / workers)
    return max(1, min(MAX_SEGMENT_FRAMES, max(balanced, min(MIN_SEGMENT_FRAMES, one_each))))


def _input_path(url: str, scratch: Path) -> str:
    try:
        return local_copy(url, scratch)
    except (OSError, ValueError) as exc:
        raise InputError(f"input {url}: cannot be read: {exc}") from None


class VideoKind(JobKind):
    name = "video"

    def validate(self, spec: JobSpec) -> None:
        options = spec.options
        unknown = set(options) - {"model", "encoder", "smoothing", "segment_frames",
                                  "batch_size", "warmup_frames", "report"}
        if unknown:
            raise SpecError(f"unknown video option(s) {sorted(unknown)}")
        if not isinstance(options.get("model"), dict):
            raise SpecError("a video job needs options.model (a style model spec)")
        model_from_spec(options["model"])
        EncoderSettings.from_dict(options.get("encoder") or {})
        if options.get("smoothing") is not None:
            SmoothingSettings(**options["smoothing"])
        for key in ("segment_frames", "batch_size"):
            value = options.get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise SpecError(f"options.{key} must be a positive integer, got {value!r}")
        if not isinstance(options.get("report", True), bool):
            raise SpecError(f"options.report must be true or false, got {options['report']!r}")

    def expand_inputs(self, spec: JobSpec, inputs: Sequence[str]) -> list[str]:
        urls = expand_inputs(inputs)
        if len(urls) != 1:
            raise InputError(f"a video job takes one input video; {list(inputs)} matched "
                             f"{len(urls)} files")
        return urls

    def check_output(self, spec: JobSpec, output_url: str, overwrite: bool) -> None:
        fs, path = url_to_fs(to_url(output_url))
        if not path.lower().endswith(_SUFFIXES):
            raise SpecError(f"output {output_url} must end in {', '.join(_SUFFIXES)}")
        parent = path.rsplit("/", 1)[0]
        if to_url(output_url).startswith("file://") and not fs.isdir(parent):
            raise InputError(f"output folder {parent} does not exist")
        if fs.exists(path) and not overwrite:
            raise OutputExistsError(
                f"output {output_url} already exists; pass --overwrite to replace it")

    def plan(self, spec: JobSpec, urls: list[str], system: Store) -> list[PlannedBatch]:
        with tempfile.TemporaryDirectory(prefix="batchscore-plan-") as scratch:
            info = probe(_input_path(urls[0], Path(scratch)))
        options = spec.options
        frames = options.get("segment_frames") or segment_frames_for(info.frame_count,
                                                                      spec.workers)
        warmup = int(options.get("warmup_frames", 8)) if options.get("smoothing") else 0
        return [PlannedBatch(items=[s.to_dict()], n_items=s.frame_count)
                for s in plan_segments(info, frames, warmup)]

    def make_scorer(self, cfg: WorkerConfig) -> Scorer:
        return VideoScorer(cfg)

    def commit(self, ctx: CommitContext) -> None:
        if len(ctx.parts) != ctx.minibatches_total:
            raise JobStateError(
                f"job {ctx.job_id}: {ctx.minibatches_total - len(ctx.parts)} of "
                f"{ctx.minibatches_total} segment(s) failed; a video needs all of them")
        # copies of a remote input and chunks, the joined video before its upload: removed
        # once committed
        with tempfile.TemporaryDirectory(prefix=f"batchscore-{ctx.job_id}-") as scratch:
            _join(ctx, Path(scratch))


def _join(ctx: CommitContext, scratch: Path) -> None:
    """Join the chunks into the output video (with the source's audio) and its report."""
    source = _input_path(ctx.inputs[0], scratch)
    chunks = [_local_part(ctx.system, part, scratch) for part in ctx.parts]
    fs, out = url_to_fs(to_url(ctx.output_url))
    joined = time.time()
    if to_url(ctx.output_url).startswith("file://"):
        join_chunks(chunks, source, out)  # written as .partial, renamed when complete
        local = Path(out)
    else:
        local = scratch / f"output{Path(out).suffix}"
        join_chunks(chunks, source, local)
        tmp = f"{out}.partial"
        fs.put_file(str(local), tmp)
        fs.mv(tmp, out)
    if ctx.spec.options.get("report", True):
        timing = _timing(ctx, time.time() - joined)
        _write_report(ctx.spec.options, source, local, out, fs, scratch, timing)


def _timing(ctx: CommitContext, join_seconds: float) -> dict[str, Any]:
    """How long the segments took to render (the union of their final attempts' intervals,
    from the workers' per-batch timings: a resumed job's pause does not count) and to join."""
    spans: list[tuple[float, float]] = []
    frames = 0
    for part in ctx.parts:
        name = part.rsplit("/", 1)[-1].removesuffix(".mp4")
        rel = frames_file(job_logs(ctx.job_id), name)
        if not ctx.system.exists(rel):
            continue
        for line in ctx.system.read_text(rel).splitlines():
            batch = json.loads(line)
            spans.append((float(batch["start"]), float(batch["end"])))
            frames += int(batch["frames"])
    render = 0.0
    end = -math.inf
    for start, stop in sorted(spans):
        if stop > end:
            render += stop - max(start, end)
            end = stop
    seconds = render + join_seconds
    return {"render_seconds": round(render, 2), "join_seconds": round(join_seconds, 2),
            "seconds": round(seconds, 2),
            "frames_per_second": round(frames / seconds, 2) if seconds > 0 else None}


def report_settings(options: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """The settings a video job ran with, as its quality report records them."""
    model = options["model"]
    size = model_from_spec(model).network_size(width, height)
    max_size = model.get("max_size")
    network = list(size) if size else list(run_size(width, height, max_size))
    style: Any = {"multistyle": model.get("style"), "arbitrary": "style picture",
                  "onnx": "user model"}.get(model.get("kind"), model.get("kind"))
    if isinstance(style, dict):
        style = ",".join(f"{k}:{v:g}" for k, v in style.items())
    return {"model": model.get("kind"), "style": style, "strength": model.get("strength", 1.0),
            "max_size": max_size, "network_size": network,
            "smoothing": options.get("smoothing"), "batch_size": options.get("batch_size"),
            "encoder": options.get("encoder") or {}}


def _write_report(options: dict[str, Any], source: str, local: Path, out: str, fs: Any,
                  scratch: Path, timing: dict[str, Any]) -> None:
    """``<output>.quality.json`` and ``<output>.contact.png`` beside the output, measured in
    a process of its own (``quality.run_isolated``: the driver forks workers)."""
    json_path, png_path = report_paths(out)
    if isinstance(fs, LocalFileSystem):
        run_isolated(_report_files, options, source, str(local), Path(out).name, json_path,
                     png_path, timing)
        return
    here_json, here_png = report_paths(str(scratch / "report"))
    run_isolated(_report_files, options, source, str(local), Path(out).name, here_json,
                 here_png, timing)
    for here, there in ((here_json, json_path), (here_png, png_path)):
        fs.put_file(here, f"{there}.partial")
        fs.mv(f"{there}.partial", there)


def _report_files(options: dict[str, Any], source: str, local: str, name: str, json_path: str,
                  png_path: str, timing: dict[str, Any]) -> None:
    info = probe(source)
    report, frames = measure_video(source, local, options["model"],
                                   settings=report_settings(options, info.width, info.height),
                                   timing=timing, info=info)
    report["input"], report["output"] = Path(source).name, name
    write_report(report, frames, json_path, png_path)


def _local_part(system: Store, part: str, scratch: Path) -> Path:
    if system.is_local:
        return system.local_path(part)
    target = scratch / "parts" / part.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    system.fs.get_file(system.path(part), str(target))
    return target


class VideoScorer:
    """One worker's network, loaded once; renders segments into chunks."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        options = cfg.spec.options
        self.store = Store(cfg.system_url, "system")
        self.model = model_from_spec(options["model"])
        self.encoder = EncoderSettings.from_dict(options.get("encoder") or {})
        smoothing = options.get("smoothing")
        self.smoothing = SmoothingSettings(**smoothing) if smoothing is not None else None
        self.batch_size = int(options.get("batch_size") or 4)
        self.scratch = Path(cfg.scratch_dir)  # the run's: removed once the workers stop
        self.input = _input_path(cfg.inputs[0], self.scratch)

    def run(self, idx: int, attempt: int, items: list[Any]) -> TaskResult:
        segment = Segment.from_dict(items[0])
        started = time.time()
        rel = part_path(self.cfg.parts_prefix, idx, attempt, ".mp4")
        if self.store.is_local:
            chunk = self.store.local_path(rel)
            chunk.parent.mkdir(parents=True, exist_ok=True)
        else:
            chunk = self.scratch / "chunks" / Path(rel).name
            chunk.parent.mkdir(parents=True, exist_ok=True)
        batches: list[dict[str, Any]] = []
        last = [started, 0]
        partial = PartialProgress(self.store, self.cfg.log_prefix, idx, attempt)

        def progress(done: int, total: int) -> None:
            partial.report(done)
            now = time.time()
            frames = done - int(last[1])
            batches.append({"segment": idx, "attempt": attempt,
                            "first_frame": segment.first_frame + int(last[1]),
                            "frames": frames, "start": last[0], "end": now,
                            "ms_per_frame": round(1000 * (now - last[0]) / max(1, frames), 2)})
            last[0], last[1] = now, done

        try:
            frames = render_segment(self.input, segment, self.model.stylize, chunk,
                                    self.encoder, self.batch_size, progress, self.smoothing,
                                    self.model.network_size)
        finally:
            partial.clear()
        if not self.store.is_local:
            self.store.put_file(chunk, rel)
            os.unlink(chunk)
        self.store.write_text(
            frames_file(self.cfg.log_prefix, attempt_name(idx, attempt)),
            "".join(json.dumps(b) + "\n" for b in batches),
        )
        return TaskResult(idx, attempt, worker_name(), started, time.time(), frames, rel)

    def shutdown(self) -> None:
        return None


def stylize_job(
    ws: Workspace,
    input: str,
    output: str,
    *,
    style: str | int | None = None,
    style_image: str | None = None,
    model_card: str | None = None,
    strength: float = 1.0,
    max_size: int | None = DEFAULT_MAX_SIZE,
    workers: int = 2,
    segment_frames: int | None = None,
    batch_size: int = 4,
    temporal_smoothing: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    encoder: dict[str, Any] | None = None,
    max_retries: int = 2,
    timeout: float = 3600.0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    executor: str | None = None,
    report: bool = True,
) -> Job:
    """Restyle every frame of ``input`` into ``output`` as a parallel, resumable job.

    The style is one of the 26 built-in ones (``style=7``, or a blend ``"3:0.5,12:0.5"``),
    any picture (``style_image``, its style vector computed once here), or a user ONNX
    image-to-image model (``model_card``). ``max_size`` is the long side the network runs
    at (0 or None: the video's own size); the output keeps the input's resolution, frame
    timestamps and audio. ``executor`` (``"local"`` or ``"ray"``) overrides the workspace's
    ``executor.kind``. With ``report`` (the default), ``<output>.quality.json`` and
    ``<output>.contact.png`` are written beside the output (``quality.py``).
    """
    given = [x is not None for x in (style, style_image, model_card)]
    if sum(given) > 1:
        raise SpecError("give one of style, style_image and model_card")
    common: dict[str, Any] = {
        "max_size": max_size or None, "batch_size": batch_size, "strength": strength,
        "device": device, "threads": threads or threads_per_worker(workers),
    }
    if style_image is not None:
        if not Path(style_image).is_file():
            raise InputError(f"style image {style_image!r} does not exist")
        vector = compute_style_vector(style_image, RuntimeOptions(device=device))
        model: dict[str, Any] = {"kind": "arbitrary",
                                 "style_vector": [float(v) for v in vector], **common}
    elif model_card is not None:
        card = load_model_card(model_card)
        model = {"kind": "onnx", "card": card.to_dict(), **common}
    else:
        model = {"kind": "multistyle", "style": str(0 if style is None else style), **common}
    spec = video_spec(
        model, name=f"video-style {Path(input).name}", workers=workers,
        segment_frames=segment_frames, batch_size=batch_size,
        smoothing=SmoothingSettings() if temporal_smoothing else None, encoder=encoder,
        max_retries=max_retries, timeout=timeout, report=report,
    )
    return run_job(ws, spec, [input], output, overwrite=overwrite, progress=progress,
                   executor=executor)


def video_spec(
    model: dict[str, Any],
    *,
    name: str = "video-style",
    workers: int = 2,
    segment_frames: int | None = None,
    batch_size: int = 4,
    smoothing: SmoothingSettings | None = None,
    encoder: dict[str, Any] | None = None,
    max_retries: int = 2,
    timeout: float = 3600.0,
    report: bool = True,
) -> JobSpec:
    """The job spec of a video style-transfer job for ``model`` (a model spec); without
    ``report``, no quality report or contact sheet is written."""
    options: dict[str, Any] = {"model": model, "encoder": encoder or {},
                               "batch_size": batch_size}
    if not report:
        options["report"] = False
    if segment_frames is not None:
        options["segment_frames"] = segment_frames
    if smoothing is not None:
        options["smoothing"] = smoothing.to_dict()
    return JobSpec(
        name=name, kind="video", options=options, max_concurrency_per_instance=workers,
        error_threshold=0,  # a video needs every segment
        retry_settings={"max_retries": max_retries, "timeout": timeout},  # type: ignore[arg-type]
    )
