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

from ..jobs import failure
from ..jobs.runner import ProgressSnapshot
from ._common import WorkspaceOpt, console, err_console, errors, open_ws
from .job import ExecutorOpt, RayAddressOpt, use_executor

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
        fps = f"{snap.items_succeeded / elapsed:.1f}" if elapsed > 0 else "-"
        self.progress.update(self.task, completed=snap.items_succeeded, fps=fps)


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
        help="Long side the network runs at; the output keeps the input's size.")] = 512,
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
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    workspace: WorkspaceOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Restyle every frame of a video in parallel segments, keeping its timing and audio.

    Running the same command again resumes an interrupted run from its finished segments.

    Example:

        batchscore video stylize clip.mp4 -o styled.mp4 --style 7 --max-size 384
        batchscore video stylize clip.mp4 -o styled.mp4 --style-image painting.jpg --workers 4
    """
    from ..video.job import stylize_job

    with errors():
        ws = open_ws(workspace)
        executor = use_executor(ws, executor, ray_address)
        with _FrameBar(progress and err_console.is_terminal) as bar:
            job = stylize_job(
                ws, str(input), str(output), style=style,
                style_image=str(style_image) if style_image else None,
                model_card=str(model_card) if model_card else None, strength=strength,
                max_size=max_size, workers=workers, segment_frames=segment_frames,
                batch_size=batch_size, temporal_smoothing=temporal_smoothing, device=device,
                threads=threads, encoder={"crf": crf} if crf is not None else None,
                overwrite=overwrite, progress=bar, executor=executor,
            )
        if job.state != "succeeded":
            raise failure(ws, job)
        took = (job.finished_at or 0) - (job.started_at or 0)
        console.print(f"job {job.id}: {job.items_succeeded} frames in {took:.1f}s "
                      f"({job.items_succeeded / max(took, 1e-9):.1f} frames/s)")
        console.print(f"output: {output.resolve()}")
