"""Temporal smoothing: blend each stylized frame with the previous output, warped by optical flow.

Style networks treat every frame on its own, so textures flicker. Where the optical flow
between the previous and the current input frame is reliable (forward and backward flow
agree, so the pixel is not occluded or newly visible), the stylized frame is blended with the
previous *output* warped into the current frame. Needs OpenCV (``opencv-python-headless``).

Each segment starts without a previous frame; ``plan_segments(..., warmup_frames=n)`` lets
``render_segment`` decode and stylize the ``n`` frames before the segment (not encoded) so
that smoothing is already settled at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from batchscore.errors import UsageError

__all__ = ["SmoothingSettings", "TemporalSmoother"]


@dataclass(frozen=True)
class SmoothingSettings:
    """``weight``: how much of the warped previous output a reliable pixel keeps (0..1);
    ``flow_size``: the long side at which optical flow is computed; ``interpolation``: how
    the previous output is warped (``cubic`` or ``linear``).

    The defaults come from ``benchmarks/video_quality.py`` (docs/video.md, "Temporal
    smoothing"): on the real clip at 640x360, ``max_size`` 256, weight 0.9 with cubic warping
    takes the warping error from 0.00116 to 0.00024 (the input's: 0.00013), content kept up,
    style matched down 16%; the former 0.6 with linear warping reached 0.00044. Linear
    warping blurs a little more at every frame, which a high weight accumulates: at 0.9 it
    flickers less (0.00019) but loses twice the style (33%)."""

    weight: float = 0.9
    flow_size: int = 256
    interpolation: str = "cubic"

    def __post_init__(self) -> None:
        if self.interpolation not in ("cubic", "linear"):
            raise UsageError(f"smoothing interpolation must be 'cubic' or 'linear', got "
                             f"{self.interpolation!r}")
        if not 0.0 < self.weight < 1.0:
            raise UsageError(
                f"smoothing weight must be between 0 and 1 (exclusive), got {self.weight}"
            )
        if self.flow_size < 16:
            raise UsageError(f"smoothing flow_size must be at least 16, got {self.flow_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise UsageError(
            "temporal smoothing needs OpenCV: pip install opencv-python-headless"
        ) from None
    return cv2


class TemporalSmoother:
    """Wraps a stylize function; call it on consecutive batches of one segment, in order."""

    def __init__(self, stylize: Callable[[np.ndarray], np.ndarray], settings: SmoothingSettings):
        self._cv2 = _cv2()
        self._stylize = stylize
        self.settings = settings
        self._flow = self._cv2.DISOpticalFlow_create(self._cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._previous_gray: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        styled = self._stylize(frames)
        out = np.empty_like(styled)
        for i, (frame, picture) in enumerate(zip(frames, styled, strict=True)):
            out[i] = self._smooth(frame, picture)
        return out

    def _smooth(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        height, width = frame.shape[:2]
        scale = min(1.0, self.settings.flow_size / max(height, width))
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        gray = cv2.resize(
            cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA
        )
        previous, previous_output = self._previous_gray, self._previous_output
        result = styled
        if previous is not None and previous_output is not None:
            backward = self._flow.calc(gray, previous, None)  # current -> previous
            forward = self._flow.calc(previous, gray, None)  # previous -> current
            grid = np.stack(np.meshgrid(np.arange(size[0]), np.arange(size[1])), -1)
            target = (grid + backward).astype(np.float32)
            forward_there = cv2.remap(forward, target[..., 0], target[..., 1], cv2.INTER_LINEAR)
            # Ruder et al.: forward and backward flow must cancel out where nothing is occluded
            error = np.sum((backward + forward_there) ** 2, -1)
            bound = 0.01 * (np.sum(backward**2, -1) + np.sum(forward_there**2, -1)) + 0.5
            reliable = (error < bound).astype(np.float32)
            reliable = cv2.resize(reliable, (width, height), interpolation=cv2.INTER_LINEAR)
            full = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) / scale
            map_x = (np.arange(width, dtype=np.float32)[None, :] + full[..., 0]).astype(np.float32)
            map_y = (np.arange(height, dtype=np.float32)[:, None] + full[..., 1]).astype(np.float32)
            kernel = cv2.INTER_CUBIC if self.settings.interpolation == "cubic" else \
                cv2.INTER_LINEAR
            warped = cv2.remap(
                previous_output, map_x, map_y, kernel, borderMode=cv2.BORDER_REPLICATE
            )
            keep = (self.settings.weight * reliable)[..., None]
            blended = keep * warped.astype(np.float32) + (1.0 - keep) * styled.astype(np.float32)
            result = (blended + 0.5).astype(np.uint8)
        self._previous_gray, self._previous_output = gray, result
        return result
