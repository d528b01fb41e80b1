"""Stylizing a whole video in one process: the job engine runs the same steps in parallel."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from batchscore.errors import UsageError
from batchscore.models.base import StyleModel
from batchscore.video.encoding import EncoderSettings
from batchscore.video.join import join_chunks
from batchscore.video.probe import VideoInfo, probe
from batchscore.video.render import render_segment
from batchscore.video.segments import plan_segments
from batchscore.video.smoothing import SmoothingSettings

__all__ = ["stylize_video"]


def stylize_video(
    input_path: str | Path,
    output_path: str | Path,
    model: StyleModel | Callable[[np.ndarray], np.ndarray],
    *,
    target_frames: int = 250,
    settings: EncoderSettings | None = None,
    batch_size: int = 8,
    work_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    smoothing: SmoothingSettings | None = None,
    warmup_frames: int = 8,
) -> VideoInfo:
    """Probe, split into segments, render every segment in turn, and join; returns the probe.

    ``model`` is a StyleModel or any function from N,H,W,3 uint8 frames to the same shape.
    Chunks go to a temporary folder (inside ``work_dir`` when given) that is removed after.
    ``progress(frames_done, frames_total)`` is called over the whole video. ``smoothing``
    turns on temporal smoothing, warmed up on ``warmup_frames`` frames before each segment.
    """
    stylize = model.stylize if isinstance(model, StyleModel) else model
    network_size = model.network_size if isinstance(model, StyleModel) else None
    if not callable(stylize):
        raise UsageError(f"model must be a StyleModel or a function, got {type(model).__name__}")
    info = probe(input_path)
    segments = plan_segments(info, target_frames, warmup_frames if smoothing else 0)
    with tempfile.TemporaryDirectory(prefix="batchscore-chunks-", dir=work_dir) as scratch:
        chunks = []
        for segment in segments:
            chunk = Path(scratch) / f"chunk-{segment.index:05d}.mp4"
            done_before = segment.first_frame

            def report(done: int, _total: int, offset: int = done_before) -> None:
                if progress is not None:
                    progress(offset + done, info.frame_count)

            render_segment(
                input_path, segment, stylize, chunk, settings, batch_size, report, smoothing,
                network_size,
            )
            chunks.append(chunk)
        join_chunks(chunks, input_path, output_path, rotation=info.rotation)
    return info
