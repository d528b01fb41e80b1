"""The 26-style network: style specs, batching, strength and resolution handling."""

from __future__ import annotations

import numpy as np
import pytest

from batchscore.errors import UsageError
from batchscore.models import NUM_STYLES, MultiStyleModel, parse_style_weights


def test_parse_one_style_and_blends() -> None:
    one = parse_style_weights(7)
    assert one.shape == (NUM_STYLES,) and one[7] == 1 and one.sum() == 1
    assert np.array_equal(parse_style_weights("7"), one)
    blend = parse_style_weights("3:0.5, 12:1.5")
    assert blend[3] == pytest.approx(0.25) and blend[12] == pytest.approx(0.75)
    assert np.allclose(parse_style_weights({3: 1, 12: 3}), blend)
    assert np.allclose(parse_style_weights(list(blend)), blend)
    assert parse_style_weights("3,4")[[3, 4]].tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "has an empty entry"),
        ("3,,4", "has an empty entry"),
        ("x:1", "style index 'x' in 'x:1' is not an integer"),
        ("3:", "has no weight after ':'"),
        ("3:abc", "style weight 'abc' in '3:abc' is not a number"),
        ("3:-1", "must be finite and non-negative"),
        ("3:nan", "must be finite and non-negative"),
        ("26", "style index must be 0 to 25, got 26"),
        (-1, "style index must be 0 to 25, got -1"),
        ("3:0,4:0", "must not all be zero"),
        ("3,3", "style index 3 appears twice"),
        ([1.0, 2.0], "a weight list needs 26 values, got 2"),
        (True, "style must be an index or weights"),
    ],
)
def test_bad_style_specs(spec: object, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_style_weights(spec)  # type: ignore[arg-type]


def test_stylize_keeps_shape_and_changes_pixels(frames: np.ndarray) -> None:
    out = MultiStyleModel(3, max_size=64).stylize(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frames).mean() > 10


def test_batches_give_the_same_frames(frames: np.ndarray) -> None:
    together = MultiStyleModel("3:0.5,12:0.5", max_size=48, batch_size=3).stylize(frames)
    alone = MultiStyleModel("3:0.5,12:0.5", max_size=48, batch_size=1).stylize(frames)
    assert np.abs(together.astype(int) - alone).max() <= 1


def test_styles_differ_and_strength_blends(frames: np.ndarray) -> None:
    a = MultiStyleModel(0, max_size=48).stylize(frames).astype(int)
    b = MultiStyleModel(20, max_size=48).stylize(frames).astype(int)
    assert np.abs(a - b).mean() > 5
    assert np.array_equal(MultiStyleModel(0, max_size=48, strength=0).stylize(frames), frames)
    half = MultiStyleModel(0, max_size=48, strength=0.5).stylize(frames).astype(int)
    assert np.abs(half - (a + frames) / 2).max() <= 1


def test_max_size_runs_small_and_returns_full_size(frames: np.ndarray) -> None:
    big = np.repeat(np.repeat(frames[:1], 4, axis=1), 4, axis=2)  # 244x388
    out = MultiStyleModel(1, max_size=32).stylize(big)
    assert out.shape == big.shape
    assert MultiStyleModel(1, max_size=None).stylize(frames[:1, :20, :20]).shape == (1, 20, 20, 3)


def test_empty_batch_and_bad_frames(frames: np.ndarray) -> None:
    model = MultiStyleModel(1, max_size=32)
    assert model.stylize(frames[:0]).shape == (0, 61, 97, 3)
    with pytest.raises(UsageError, match=r"must have shape \(N, H, W, 3\), got \(61, 97, 3\)"):
        model.stylize(frames[0])
    with pytest.raises(UsageError, match="frames must be uint8, got float32"):
        model.stylize(frames.astype(np.float32))
    with pytest.raises(UsageError, match="strength must be between 0 and 1, got 2"):
        MultiStyleModel(1, strength=2)
    with pytest.raises(UsageError, match="max_size must be at least 16"):
        MultiStyleModel(1, max_size=8)
