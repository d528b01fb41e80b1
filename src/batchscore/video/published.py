"""The published pipeline ``video-style``: restyle one video of the data store into another."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from fsspec.core import has_magic, url_to_fs
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InputError
from ..pipelines.contract import Pipeline, Plan
from ..pipelines.datastore import data_url, resolve_data_path
from ..workspace import Workspace

__all__ = ["VideoStyle", "VideoStyleParams"]

_STYLE = re.compile(r"^\s*\d{1,2}(\s*:\s*[0-9.]+)?(\s*,\s*\d{1,2}(\s*:\s*[0-9.]+)?)*\s*$")
_VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")


class VideoStyleParams(BaseModel):
    """Parameters of ``video-style``: restyle one video of the data store into another."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="The video: a path in the data store, or its URL.",
                       max_length=1024)
    output: str = Field(
        description="A .mp4/.mov/.m4v path in the data store, or a folder ending in '/': "
        "then the output is <folder>/<run id>/<input name>.", max_length=1024)
    style: str = Field("0", description="Built-in style 0-25, or a blend such as 3:0.5,12:0.5.",
                       max_length=200)
    strength: float = Field(1.0, ge=0.0, le=1.0)
    max_size: int = Field(768, ge=16, le=4096, description="Long side the network runs at "
                          "(the default: docs/video.md, 'Choosing the network size').")
    workers: int = Field(2, ge=1, le=64)
    segment_frames: int | None = Field(None, ge=1, le=100_000)
    batch_size: int = Field(4, ge=1, le=256)
    overwrite: bool = False

    @field_validator("style", mode="before")
    @classmethod
    def _style(cls, value: Any) -> str:
        text = str(value)
        if not _STYLE.match(text):
            raise ValueError(f"style must be an index 0-25 or a blend such as 3:0.5,12:0.5, "
                             f"got {text!r}")
        return text.replace(" ", "")


class VideoStyle(Pipeline):
    name = "video-style"
    summary = "Restyle every frame of a video with a built-in style, keeping its audio."
    params = VideoStyleParams
    sample_input = "video.mp4"
    quality_report = True

    def check(self, ws: Workspace, params: VideoStyleParams) -> None:
        rel = resolve_data_path(ws, params.input, "input")
        if has_magic(rel):
            raise InputError(f"input {params.input!r} is a pattern; video-style restyles one "
                             "video: give its path (no '*', '?' or '[')")
        if not rel.lower().endswith(_VIDEO_SUFFIXES):
            raise InputError(f"input {params.input!r} must be a video "
                             f"({', '.join(_VIDEO_SUFFIXES)})")
        out = resolve_data_path(ws, params.output, "output")
        if not out.endswith("/") and not out.lower().endswith(_VIDEO_SUFFIXES):
            raise InputError(f"output {params.output!r} must end in "
                             f"{', '.join(_VIDEO_SUFFIXES)} or be a folder ending in '/'")

    def plan(self, ws: Workspace, params: VideoStyleParams, run_id: str) -> Plan:
        from .job import video_spec  # the job kind and its models: loaded when a run plans

        self.check(ws, params)
        model = {"kind": "multistyle", "style": params.style, "max_size": params.max_size,
                 "batch_size": params.batch_size, "strength": params.strength,
                 "device": "cpu", "threads": 1}
        spec = video_spec(model, name=f"video-style {PurePosixPath(params.input).name}",
                          workers=params.workers, segment_frames=params.segment_frames,
                          batch_size=params.batch_size)
        output = _output(ws, params, run_id)
        if output.startswith("file://"):
            fs, path = url_to_fs(output)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return Plan(spec, [data_url(ws, resolve_data_path(ws, params.input, "input"))], output)


def _output(ws: Workspace, params: VideoStyleParams, run_id: str) -> str:
    out = resolve_data_path(ws, params.output, "output")
    if out.endswith("/"):
        name = PurePosixPath(resolve_data_path(ws, params.input, "input")).name
        out = f"{out}{run_id}/{name}"
    return data_url(ws, out)
