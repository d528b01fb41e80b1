"""The built-in quantized networks with onnxruntime's 8-bit kernels against dequantize + float
(``session.disable_quant_qdq``, what ``models/runtime.py`` chooses on an x86 CPU without VNNI):
milliseconds a call and, for the style predictor, the distance of style 7's reference vector
from the shipped one (``tests/video/test_video_quality.py``'s check).

Each way is timed ``--repeat`` times, interleaved, after one untimed call; medians printed.

Example:
    .venv/bin/python benchmarks/quantized.py --repeat 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from batchscore.models import runtime
from batchscore.models.assets import builtin_model_path
from batchscore.video.references import builtin_references, compute_reference


def session(name: str, floats: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if floats:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(str(builtin_model_path(name)), options,
                                providers=["CPUExecutionProvider"])


def feeds(s: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {i.name: rng.random([d if isinstance(d, int) else 1 for d in i.shape],
                               dtype=np.float32) for i in s.get_inputs()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result: dict[str, object] = {
        "command": f"benchmarks/quantized.py --repeat {args.repeat}",
        "machine": f"{platform.node()} ({platform.machine()}, onnxruntime {ort.__version__})",
        "date": time.strftime("%Y-%m-%d"),
        "integer_dot_saturates": runtime.integer_dot_saturates(),
    }
    for name in ("arbitrary_predict", "arbitrary_transform"):
        ways = {"int8": session(name, False), "float": session(name, True)}
        inputs = feeds(ways["int8"])
        times: dict[str, list[float]] = {way: [] for way in ways}
        for s in ways.values():
            s.run(None, inputs)
        for _ in range(args.repeat):
            for way, s in ways.items():
                start = time.perf_counter()
                s.run(None, inputs)
                times[way].append(time.perf_counter() - start)
        med = {way: statistics.median(t) * 1e3 for way, t in times.items()}
        result[name] = {"median_ms": med, "float_vs_int8": med["float"] / med["int8"]}
        print(f"{name:20s} int8 {med['int8']:7.1f} ms   float {med['float']:7.1f} ms   "
              f"float / int8 {med['float'] / med['int8']:.2f}")
        if name == "arbitrary_predict":
            shipped = builtin_references()[7]
            gaps = {way: float(np.abs(compute_reference(7, session=s) - shipped).max())
                    for way, s in ways.items()}
            result["style7_reference_max_gap"] = gaps
            print(f"{'':20s} style 7's reference, largest gap from the shipped one: "
                  f"int8 {gaps['int8']:.4f}   float {gaps['float']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
