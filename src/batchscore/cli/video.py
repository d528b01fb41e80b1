"""``batchscore video``: neural style transfer on a video, as a parallel batch job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import UsageError
from ..jobs import failure
from ..jobs.runner import ProgressSnapshot
from ._common import (
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    call_server,
    console,
    err_console,
    errors,
    open_ws,
)
from .job import ExecutorOpt, RayAddressOpt, use_executor

DEFAULT_MAX_SIZE = 768  # batchscore.video.job.DEFAULT_MAX_SIZE (docs/video.md), not imported:
# the CLI imports the video stack only when a video command runs

__all__ = ["app"]

app = typer.Typer(
    help="Neural style transfer on videos.\n\nExample:\n\n"
    "    batchscore video stylize clip.mp4 -o styled.mp4 --style 7",
    no_args_is_help=True,
)


class _FrameBar:
    """Frames done, frames/s and time left."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]frames"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[fps]} frames/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
            disable=not enabled,
        )
        self.task: Any = None

    def __enter__(self) -> _FrameBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, snap: ProgressSnapshot) -> None:
        if self.task is None:
            self.task = self.progress.add_task("frames", total=snap.items_total, fps="-")
        task = self.progress.tasks[0]
        elapsed = task.elapsed or 0.0
        done = snap.items_succeeded + snap.items_in_progress
        fps = f"{done / elapsed:.1f}" if elapsed > 0 else "-"
        self.progress.update(self.task, completed=done, fps=fps)


@app.command()
def stylize(
    input: Annotated[Path, typer.Argument(help="The video to restyle.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .mp4/.mov/.m4v.",
                                         show_default=False)],
    style: Annotated[str | None, typer.Option(
        help="Built-in style 0-25, or a blend such as 3:0.5,12:0.5.")] = None,
    style_image: Annotated[Path | None, typer.Option(
        help="Any picture as the style (its style is computed once).")] = None,
    model_card: Annotated[Path | None, typer.Option(
        help="A user ONNX image-to-image model, described by a JSON/YAML model card.")] = None,
    strength: Annotated[float, typer.Option(help="0 keeps the input, 1 is fully styled.")
                        ] = 1.0,
    max_size: Annotated[int, typer.Option(
        help="Long side the network runs at (0: the video's own size); the output keeps "
        "the input's size. The default is chosen from docs/video.md's measurements.")
    ] = DEFAULT_MAX_SIZE,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    segment_frames: Annotated[int | None, typer.Option(
        help="Frames per segment (one mini-batch each); default: about 4 per worker.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Frames per network call.")] = 4,
    temporal_smoothing: Annotated[bool, typer.Option(
        help="Blend with the flow-warped previous output to reduce flicker.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="Threads per worker.")] = None,
    crf: Annotated[int | None, typer.Option(help="x264 quality (lower is better).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="x264 preset: ultrafast ... veryslow (slower: smaller files).",
        show_default="veryfast")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    report: Annotated[bool, typer.Option(
        help="Write <output>.quality.json and <output>.contact.png (figures and frames "
        "side by side).")] = True,
    workspace: WorkspaceOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Restyle every frame of a video in parallel segments, keeping its timing and audio.

    Running the same command again resumes an interrupted run from its finished segments.
    With --server the video is uploaded to the service, restyled there by its video-style
    pipeline, and the result downloaded to --output.

    Example:

        batchscore video stylize clip.mp4 -o styled.mp4 --style 7 --max-size 384
        batchscore video stylize clip.mp4 -o styled.mp4 --style-image painting.jpg --workers 4
        batchscore video stylize clip.mp4 -o styled.mp4 --style 7 --server http://gpu-box:8000
    """
    from ..video.job import stylize_job

    with errors():
        if max_size < 0 or 0 < max_size < 16:
            raise UsageError(f"--max-size must be 0 (the video's own size) or at least 16, "
                             f"got {max_size}")
        if server:
            local_only = [flag for flag, used in (
                ("--style-image", style_image), ("--model-card", model_card),
                ("--temporal-smoothing", temporal_smoothing), ("--device", device != "cpu"),
                ("--no-report", not report), ("--max-size 0", max_size == 0),
                ("--threads", threads), ("--crf", crf), ("--preset", preset),
                ("--executor", executor),
                ("--ray-address", ray_address)) if used]
            if local_only:
                raise UsageError(f"{', '.join(local_only)} cannot be used with --server (the "
                                 "service's video-style pipeline takes --style, --strength, "
                                 "--max-size, --workers, --segment-frames, --batch-size)")
            _stylize_remote(server, token, input, output, style=style or "0",
                            strength=strength, max_size=max_size, workers=workers,
                            segment_frames=segment_frames, batch_size=batch_size,
                            overwrite=overwrite, progress=progress and err_console.is_terminal)
            return
        ws = open_ws(workspace)
        executor = use_executor(ws, executor, ray_address)
        if style_image is None and model_card is None:
            _calibrate(input, style or "0", max_size, device)
        with _FrameBar(progress and err_console.is_terminal) as bar:
            job = stylize_job(
                ws, str(input), str(output), style=style,
                style_image=str(style_image) if style_image else None,
                model_card=str(model_card) if model_card else None, strength=strength,
                max_size=max_size, workers=workers, segment_frames=segment_frames,
                batch_size=batch_size, temporal_smoothing=temporal_smoothing, device=device,
                threads=threads, encoder=_encoder(crf, preset),
                overwrite=overwrite, progress=bar, executor=executor, report=report,
            )
        if job.state != "succeeded":
            raise failure(ws, job)
        took = (job.finished_at or 0) - (job.started_at or 0)
        console.print(f"job {job.id}: {job.items_succeeded} frames in {took:.1f}s "
                      f"({job.items_succeeded / max(took, 1e-9):.1f} frames/s)")
        console.print(f"output: {output.resolve()}")
        if report:
            _print_report(output)


def _calibrate(input: Path, style: str, max_size: int, device: str) -> None:
    """Before a long job: the expected time and a faster setting's content (calibrate.py)."""
    from ..video import calibrate as cal
    from ..video.probe import probe

    info = probe(input)
    if info.frame_count < cal.LONG_JOB_FRAMES:
        return
    err_console.print(f"{info.frame_count} frames: calibrating on a few of them ...")
    from ..video.quality import run_isolated

    found = run_isolated(cal.calibrate, input, {  # the job forks workers next: keep the
        "kind": "multistyle", "style": style,     # network's threads out of this process
        "max_size": max_size or None, "device": device}, info)
    for line in found.lines():
        err_console.print(line, highlight=False)


def _print_report(output: Path) -> None:
    import json

    from ..video.quality import headline, report_paths

    json_path, png_path = (Path(p) for p in report_paths(str(output.resolve())))
    if not json_path.is_file():
        err_console.print(f"no quality report at {json_path}")
        return
    found = json.loads(json_path.read_text())
    console.print(f"quality: {headline(found)}", highlight=False)
    console.print(f"report: {json_path}")
    console.print(f"contact sheet: {png_path}")


def _encoder(crf: int | None, preset: str | None) -> dict[str, Any] | None:
    chosen = {k: v for k, v in (("crf", crf), ("preset", preset)) if v is not None}
    return chosen or None


def _stylize_remote(server: str, token: str | None, source: Path, output: Path, *,
                    progress: bool, overwrite: bool, **params: Any) -> None:
    """Upload, start a video-style run, follow it, download its output."""
    import time
    import uuid

    import httpx

    from ..errors import InputError, OutputExistsError

    if not source.is_file():
        raise InputError(f"input video {str(source)!r} does not exist")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"output {str(output)!r} exists; pass --overwrite to replace it")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = server.rstrip("/")
    folder = f"cli/{uuid.uuid4().hex[:12]}"
    with source.open("rb") as fh:
        try:
            answer = httpx.put(f"{base}/api/v1/data/incoming/{folder}/{source.name}",
                               content=fh, headers=headers, timeout=600)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach the service at {server}: {exc}") from None
    if answer.status_code >= 400:
        raise UsageError(f"the service refused the upload ({answer.status_code}): "
                         f"{answer.text[:500]}")
    run = call_server(server, token, "POST", "/pipelines/video-style/runs", {
        "input": f"incoming/{folder}/{source.name}",
        "output": f"outgoing/{folder}/{output.name}", **params})
    err_console.print(f"run {run['id']} started on {server}")
    with _FrameBar(progress) as bar:
        while True:
            run = call_server(server, token, "GET", f"/runs/{run['id']}")
            job = run.get("job")
            if job:
                bar(ProgressSnapshot(job["id"], job["state"], job["minibatches_total"], 0, 0,
                                     job["items_total"], job["items_succeeded"],
                                     job["items_failed"], job.get("items_in_progress", 0)))
            if run["state"] in ("succeeded", "failed", "canceled"):
                break
            time.sleep(0.5)
    if run["state"] != "succeeded":
        raise UsageError(f"run {run['id']} {run['state']}: {run.get('reason') or ''}".strip())
    link = call_server(server, token, "GET", f"/runs/{run['id']}/output")
    tmp = output.with_name(f".{output.name}.part")
    with httpx.stream("GET", f"{base}{link['url']}", timeout=600) as response:
        if response.status_code >= 400:
            raise UsageError(f"download of the output failed ({response.status_code})")
        with tmp.open("wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
    tmp.replace(output)
    job = run.get("job") or {}
    console.print(f"run {run['id']} (job {run.get('job_id')}): "
                  f"{job.get('items_succeeded', '?')} frames")
    console.print(f"output: {output.resolve()}")
    _fetch_report(base, headers, run["id"], output)


def _fetch_report(base: str, headers: dict[str, str], run_id: str, output: Path) -> None:
    """The run's quality report and contact sheet, saved beside the downloaded output."""
    import httpx

    from ..video.quality import report_paths

    json_path, png_path = (Path(p) for p in report_paths(str(output.resolve())))
    for path, route in ((json_path, "quality"), (png_path, "contact.png")):
        answer = httpx.get(f"{base}/api/v1/runs/{run_id}/{route}", headers=headers,
                           timeout=60)
        if answer.status_code >= 400:
            err_console.print(f"no quality report from the service ({answer.status_code})")
            return
        path.write_bytes(answer.content)
    _print_report(output)
