"""``batchscore video``: neural style transfer on a video, as a parallel batch job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..backend import StylizeRequest
from ..errors import UsageError
from ._common import (
    ExecutorOpt,
    RayAddressOpt,
    Report,
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    backend,
    err_console,
    errors,
)

DEFAULT_MAX_SIZE = 768  # batchscore.video.job.DEFAULT_MAX_SIZE (docs/video.md), not imported:
# the CLI imports the video stack only when a video command runs

__all__ = ["app"]

app = typer.Typer(
    help="Neural style transfer on videos.\n\nExample:\n\n"
    "    batchscore video stylize clip.mp4 -o styled.mp4 --style 7",
    no_args_is_help=True,
)


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
    with errors():
        if max_size < 0 or 0 < max_size < 16:
            raise UsageError(f"--max-size must be 0 (the video's own size) or at least 16, "
                             f"got {max_size}")
        request = StylizeRequest(
            input, output, style=style, style_image=style_image, model_card=model_card,
            strength=strength, max_size=max_size, workers=workers,
            segment_frames=segment_frames, batch_size=batch_size,
            temporal_smoothing=temporal_smoothing, device=device, threads=threads, crf=crf,
            preset=preset, overwrite=overwrite, report=report, executor=executor,
            ray_address=ray_address)
        backend(workspace, server, token).stylize(
            request, Report(progress and err_console.is_terminal))
