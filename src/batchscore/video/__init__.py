"""Video style transfer building blocks, PyAV in process: probe, plan, render, join.

The job engine plans a video into segments of about equal length (plain data; a segment
may start at any frame and records the keyframe to decode from), renders each segment into
a chunk on a worker, and joins the chunks with the original audio::

    info = probe("in.mp4")
    segments = plan_segments(info, target_frames=250)
    chunks = [render_segment("in.mp4", s, model.stylize, f"part{s.index}.mp4",
                             network_size=model.network_size) for s in ...]
    join_chunks(chunks, "in.mp4", "out.mp4")

``stylize_video`` runs the same steps in one process.
"""

from batchscore.video.encoding import EncoderSettings
from batchscore.video.inprocess import stylize_video
from batchscore.video.join import join_chunks
from batchscore.video.probe import AudioStreamInfo, VideoInfo, probe
from batchscore.video.render import render_segment
from batchscore.video.segments import Segment, plan_segments
from batchscore.video.smoothing import SmoothingSettings, TemporalSmoother

__all__ = [
    "AudioStreamInfo",
    "EncoderSettings",
    "Segment",
    "SmoothingSettings",
    "TemporalSmoother",
    "VideoInfo",
    "join_chunks",
    "plan_segments",
    "probe",
    "render_segment",
    "stylize_video",
]
