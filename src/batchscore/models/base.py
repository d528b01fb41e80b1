"""The one interface every style network offers: uint8 RGB frames in, same-shape frames out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
from PIL import Image

from batchscore.errors import UsageError
from batchscore.models.runtime import RuntimeOptions, create_session

__all__ = ["MIN_SIDE", "StyleModel", "check_frames", "run_size"]

MIN_SIDE = 16  # networks with reflect padding and two stride-2 stages need this much


def check_frames(frames: object) -> np.ndarray:
    """``frames`` as an N,H,W,3 uint8 array, or a UsageError saying what is wrong."""
    if not isinstance(frames, np.ndarray):
        raise UsageError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UsageError(f"frames must have shape (N, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise UsageError(f"frames must be uint8, got {frames.dtype}")
    return frames


def run_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """The (width, height) a network runs at: the long side capped at ``max_size``,
    the short side at least MIN_SIDE, aspect ratio kept."""
    scale = 1.0
    if max_size is not None and max(width, height) > max_size:
        scale = max_size / max(width, height)
    if min(width, height) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


def _resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    size, bicubic = (width, height), Image.Resampling.BICUBIC
    return np.stack([np.asarray(Image.fromarray(f).resize(size, bicubic)) for f in frames])


class StyleModel(ABC):
    """A style network: ``stylize(frames)`` maps N,H,W,3 uint8 RGB to the same shape.

    ``max_size`` is the long side the network runs at (frames are resized down, run, and
    resized back; None runs at full size); ``batch_size`` frames go through the network at
    once; ``strength`` blends the input (0) with the stylized output (1).
    Sessions are created on first use and are not pickled, so a model can be sent to workers.
    """

    pad_multiple: ClassVar[int] = 4  # both built-in networks downsample by 4

    def __init__(
        self,
        *,
        max_size: int | None = 512,
        batch_size: int = 4,
        strength: float = 1.0,
        runtime: RuntimeOptions | None = None,
    ) -> None:
        if max_size is not None and max_size < MIN_SIDE:
            raise UsageError(f"max_size must be at least {MIN_SIDE} or None, got {max_size}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, got {strength}")
        self.max_size = max_size
        self.batch_size = batch_size
        self.strength = float(strength)
        self.runtime = runtime or RuntimeOptions()
        self._sessions: dict[str, ort.InferenceSession] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sessions"] = {}
        return state

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.stylize(frames)

    def stylize(self, frames: np.ndarray) -> np.ndarray:
        """Stylize N,H,W,3 uint8 RGB frames; returns uint8 frames of the same shape."""
        frames = check_frames(frames)
        n, height, width, _ = frames.shape
        if n == 0:
            return frames.copy()
        run_w, run_h = self._run_size(width, height)
        small = _resize(frames, run_w, run_h).astype(np.float32) / 255.0
        ph, pw = (-run_h) % self.pad_multiple, (-run_w) % self.pad_multiple
        if ph or pw:
            small = np.pad(small, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
        parts = [
            self._run(np.ascontiguousarray(small[i : i + self.batch_size]))
            for i in range(0, n, self.batch_size)
        ]
        out = np.concatenate(parts)[:, :run_h, :run_w]
        styled = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        styled = _resize(styled, width, height)
        if self.strength < 1.0:
            mixed = self.strength * styled + (1.0 - self.strength) * frames.astype(np.float32)
            styled = (mixed + 0.5).astype(np.uint8)
        return styled

    def _run_size(self, width: int, height: int) -> tuple[int, int]:
        return run_size(width, height, self.max_size)

    def network_size(self, width: int, height: int) -> tuple[int, int] | None:
        """The (width, height) at which ``stylize`` can be given ``width`` x ``height``
        frames already scaled, returning them at that size for the caller to scale back
        (the video renderer does both in its colour conversions); None when ``stylize``
        needs the frames at full size: with ``strength`` below 1 it blends the
        full-resolution input into the result."""
        if self.strength < 1.0:
            return None
        return self._run_size(width, height)

    def _session(self, key: str, source: Any) -> ort.InferenceSession:
        """The session for ``key``, created from ``source`` (path or bytes) on first use."""
        if key not in self._sessions:
            model = source() if callable(source) else source
            self._sessions[key] = create_session(model, self.runtime)
        return self._sessions[key]

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on an N,h,w,3 float32 batch in 0..1; return the same layout."""

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """Plain, JSON-serializable data that ``model_from_spec`` turns back into this model."""

    def _common_spec(self) -> dict[str, Any]:
        return {
            "max_size": self.max_size,
            "batch_size": self.batch_size,
            "strength": self.strength,
            "device": self.runtime.device,
            "threads": self.runtime.threads,
        }
