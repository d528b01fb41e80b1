"""onnxruntime sessions: which execution provider runs a network, and with how many threads.

A quantized network (QDQ: the built-in ``arbitrary_*`` ones) runs its convolutions in 8-bit
integers, which an x86 CPU without VNNI (AVX2, or AVX-512 without VNNI) computes with
instructions whose 16-bit intermediate sums saturate: on such a CPU the style predictor's
vector moved by up to 0.38 against 0.013 between float kernels (``arbitrary_predict``,
``tests/video/test_video_quality.py``). There the session keeps the quantized layers as
dequantize + float convolution (``session.disable_quant_qdq``): the same numbers as elsewhere;
on an AVX2 VM the predictor took 1.6x its 8-bit time and the arbitrary-style network 0.88x
(``benchmarks/quantized.py``, ``benchmarks/VIDEO.md``). CPUs with VNNI, ARM and GPUs keep the
integer kernels.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from batchscore.errors import UsageError

__all__ = ["Device", "RuntimeOptions", "create_session", "execution_providers",
           "integer_dot_saturates"]

Device = Literal["cpu", "cuda", "auto"]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a network: ``device`` (cpu, cuda, or auto = cuda when available) and
    ``threads`` (onnxruntime intra-op threads; None lets onnxruntime choose)."""

    device: Device = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda", "auto"):
            raise UsageError(f"device must be cpu, cuda or auto, got {self.device!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise UsageError(f"threads must be a positive integer or None, got {self.threads!r}")


def execution_providers(device: Device) -> list[str]:
    """The onnxruntime providers for ``device``, best first.

    Raises UsageError when ``cuda`` is asked for and this onnxruntime has no CUDA provider.
    """
    available = ort.get_available_providers()
    if device == "cpu":
        return [_CPU]
    if _CUDA in available:
        return [_CUDA, _CPU]
    if device == "auto":
        return [_CPU]
    raise UsageError(
        f"device 'cuda' needs onnxruntime's {_CUDA}, but this onnxruntime "
        f"({ort.__version__}) only has {', '.join(available)}; "
        "install batchscore[gpu] (onnxruntime-gpu) or use device 'cpu'"
    )


@functools.cache
def integer_dot_saturates(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU's 8-bit dot products saturate: x86 without VNNI (``avx512_vnni`` or
    ``avx_vnni`` among its flags). An x86 CPU whose flags cannot be read counts as one
    (accuracy over speed); other architectures do not."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh
                          if line.startswith("flags")), [])
    except OSError:
        return True
    return not ({"avx512_vnni", "avx_vnni"} & set(flags))


def create_session(model: str | Path | bytes, options: RuntimeOptions) -> ort.InferenceSession:
    """An InferenceSession for an ONNX file or serialized model, on ``options.device``."""
    providers = execution_providers(options.device)
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3
    if options.threads is not None:
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
    if providers[0] == _CPU and integer_dot_saturates():
        session_options.add_session_config_entry("session.disable_quant_qdq", "1")
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, session_options, providers=providers)
    active = session.get_providers()
    if options.device == "cuda" and (not active or active[0] != _CUDA):
        # onnxruntime falls back to the CPU silently when the CUDA libraries do not load
        raise UsageError(
            f"device 'cuda' was asked for, but onnxruntime could not start {_CUDA} "
            f"(it runs on {', '.join(active)}); check the CUDA and cuDNN libraries"
        )
    return session
