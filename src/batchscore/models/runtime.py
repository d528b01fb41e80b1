"""onnxruntime sessions: which execution provider runs a network, and with how many threads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from batchscore.errors import UsageError

__all__ = ["Device", "RuntimeOptions", "create_session", "execution_providers"]

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


def create_session(model: str | Path | bytes, options: RuntimeOptions) -> ort.InferenceSession:
    """An InferenceSession for an ONNX file or serialized model, on ``options.device``."""
    providers = execution_providers(options.device)
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3
    if options.threads is not None:
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
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
