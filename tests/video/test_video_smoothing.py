"""Temporal smoothing: less flicker where the flow is reliable, no ghosts, warm-up at boundaries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from batchscore.errors import UsageError
from batchscore.video import (
    EncoderSettings,
    SmoothingSettings,
    TemporalSmoother,
    plan_segments,
    probe,
    render_segment,
    stylize_video,
)

pytest.importorskip("cv2")

FAST = EncoderSettings(preset="veryfast", crf=12)


def flicker(seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A 'style' that adds fresh noise to every frame, like a network's unstable textures."""
    rng = np.random.default_rng(seed)

    def stylize(frames: np.ndarray) -> np.ndarray:
        noise = rng.integers(-40, 41, frames.shape)
        return np.clip(frames.astype(int) + noise, 0, 255).astype(np.uint8)

    return stylize


def test_smoothing_reduces_flicker_on_a_still_scene() -> None:
    frames = np.repeat(np.random.default_rng(1).integers(0, 255, (1, 48, 64, 3)), 12, 0)
    frames = frames.astype(np.uint8)
    raw = flicker()(frames).astype(int)
    smooth = TemporalSmoother(flicker(), SmoothingSettings(weight=0.6))(frames).astype(int)
    assert (
        np.abs(np.diff(smooth[4:], axis=0)).mean() < 0.6 * np.abs(np.diff(raw[4:], axis=0)).mean()
    )


def test_moving_content_is_warped_not_smeared() -> None:
    y, x = np.mgrid[0:64, 0:96]
    texture = np.stack([x * 2, y * 3, ((x // 6 + y // 6) % 2) * 255], -1).astype(np.uint8)
    frames = np.stack([np.roll(texture, 2 * i, axis=1) for i in range(10)])
    identity = TemporalSmoother(lambda f: f.copy(), SmoothingSettings(weight=0.6))
    inner = (slice(None), slice(4, -4), slice(8, -8))  # away from the wrapping edge
    assert np.abs(identity(frames)[inner].astype(int) - frames[inner]).mean() < 3
    blurred = TemporalSmoother(flicker(), SmoothingSettings(weight=0.6))(frames).astype(int)
    raw = flicker()(frames).astype(int)
    assert np.abs(blurred - frames)[inner].mean() < np.abs(raw - frames)[inner].mean()


def test_bad_settings() -> None:
    with pytest.raises(UsageError, match="weight must be between 0 and 1"):
        SmoothingSettings(weight=1.0)
    with pytest.raises(UsageError, match="flow_size must be at least 16"):
        SmoothingSettings(flow_size=4)


def test_warmup_settles_the_first_frame_of_a_segment(clips: dict[str, Path], tmp_path: Path):
    info = probe(clips["ntsc"])
    settings = SmoothingSettings()
    cold = plan_segments(info, 12)[1]
    warm = plan_segments(info, 12, warmup_frames=6)[1]
    seen: list[int] = []

    def counting(frames: np.ndarray) -> np.ndarray:
        seen.append(len(frames))
        return frames

    done = render_segment(
        clips["ntsc"], warm, counting, tmp_path / "warm.mp4", FAST, 4, smoothing=settings
    )
    assert done == 12 and sum(seen) == 18  # six warm-up frames were stylized, not encoded
    assert probe(tmp_path / "warm.mp4").frame_pts == info.frame_pts[12:24]
    render_segment(clips["ntsc"], cold, counting, tmp_path / "cold.mp4", FAST, smoothing=settings)
    assert probe(tmp_path / "cold.mp4").frame_pts == info.frame_pts[12:24]


def test_stylize_video_with_smoothing(
    clips: dict[str, Path], tmp_path: Path, decode_all: Callable[[Path], np.ndarray]
) -> None:
    output = tmp_path / "out.mp4"
    stylize_video(
        clips["ntsc"], output, lambda f: f, target_frames=12, settings=FAST,
        smoothing=SmoothingSettings(), warmup_frames=4,
    )  # fmt: skip
    source, result = probe(clips["ntsc"]), probe(output)
    assert result.frame_pts == source.frame_pts and result.audio == source.audio
    # an identity style smoothed along the flow stays the input: the moving bar leaves no trail
    errors = np.abs(decode_all(output).astype(int) - decode_all(clips["ntsc"])).mean(axis=(1, 2, 3))
    assert errors.max() < 6, errors


def test_smoothing_defaults_and_interpolation() -> None:
    """The measured defaults (docs/video.md): weight 0.9, cubic warping; linear still there."""
    assert SmoothingSettings() == SmoothingSettings(weight=0.9, flow_size=256,
                                                    interpolation="cubic")
    with pytest.raises(UsageError, match="interpolation"):
        SmoothingSettings(interpolation="nearest")
    y, x = np.mgrid[0:64, 0:96]
    texture = np.stack([x * 2, y * 3, ((x // 6 + y // 6) % 2) * 255], -1).astype(np.uint8)
    frames = np.stack([np.roll(texture, 2 * i, axis=1) for i in range(6)])  # moving: warped
    linear = TemporalSmoother(flicker(), SmoothingSettings(interpolation="linear"))(frames)
    cubic = TemporalSmoother(flicker(), SmoothingSettings())(frames)
    assert not np.array_equal(linear[1:], cubic[1:])
