"""Execution providers, threads, model specs and the package's public surface."""

from __future__ import annotations

import json
import pickle

import numpy as np
import onnxruntime as ort
import pytest

import batchscore.models
from batchscore.errors import UsageError
from batchscore.models import (
    ArbitraryStyleModel,
    ModelCard,
    MultiStyleModel,
    OnnxImageModel,
    RuntimeOptions,
    execution_providers,
    model_from_spec,
    runtime,
)
from batchscore.models.assets import builtin_model_path


def test_cpu_and_auto() -> None:
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    assert execution_providers("auto")[-1] == "CPUExecutionProvider"


def test_cuda_without_a_cuda_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(UsageError, match="device 'cuda' needs onnxruntime's CUDAExecutionProvider"):
        execution_providers("cuda")
    with pytest.raises(UsageError, match="device 'cuda' needs"):
        MultiStyleModel(1, runtime=RuntimeOptions(device="cuda")).stylize(
            np.zeros((1, 16, 16, 3), np.uint8)
        )


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA onnxruntime"
)
def test_cuda_runs_the_network() -> None:
    model = MultiStyleModel(1, max_size=64, runtime=RuntimeOptions(device="cuda"))
    frames = np.random.default_rng(0).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    gpu = model.stylize(frames).astype(int)
    cpu = MultiStyleModel(1, max_size=64).stylize(frames).astype(int)
    assert np.abs(gpu - cpu).mean() < 2


def test_bad_runtime_options() -> None:
    with pytest.raises(UsageError, match="device must be cpu, cuda or auto, got 'tpu'"):
        RuntimeOptions(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="threads must be a positive integer or None, got 0"):
        RuntimeOptions(threads=0)


def test_threads_are_applied() -> None:
    model = MultiStyleModel(1, max_size=32, runtime=RuntimeOptions(threads=1))
    model.stylize(np.zeros((1, 16, 16, 3), np.uint8))
    session = next(iter(model._sessions.values()))
    assert session.get_session_options().intra_op_num_threads == 1


def test_specs_round_trip_through_json(onnx_models) -> None:
    frames = np.random.default_rng(2).integers(0, 255, (2, 24, 40, 3), dtype=np.uint8)
    models = [
        MultiStyleModel("3:1,12:3", max_size=32, strength=0.7),
        ArbitraryStyleModel(np.linspace(-1, 1, 100), max_size=32, batch_size=2),
        OnnxImageModel(ModelCard(str(onnx_models["nchw_1"])), max_size=32),
    ]
    for model in models:
        rebuilt = model_from_spec(json.loads(json.dumps(model.to_spec())))
        assert type(rebuilt) is type(model)
        assert rebuilt.to_spec() == model.to_spec()
        assert np.array_equal(rebuilt.stylize(frames), model.stylize(frames))
        assert np.array_equal(pickle.loads(pickle.dumps(model)).stylize(frames), model(frames))


def test_bad_specs() -> None:
    with pytest.raises(UsageError, match="kind must be multistyle, arbitrary or onnx, got 'x'"):
        model_from_spec({"kind": "x"})
    with pytest.raises(UsageError, match="unknown keys \\['colour'\\]"):
        model_from_spec({"kind": "multistyle", "style": 1, "colour": 2})
    with pytest.raises(UsageError, match="needs a 'style_vector'"):
        model_from_spec({"kind": "arbitrary"})


def test_public_surface() -> None:
    assert sorted(batchscore.models.__all__) == [
        "ArbitraryStyleModel", "ModelCard", "MultiStyleModel", "NUM_STYLES", "OnnxImageModel",
        "RuntimeOptions", "StyleModel", "builtin_model_path", "compute_style_vector",
        "execution_providers", "load_model_card", "model_from_spec", "parse_style_weights",
        "resolution_free",
    ]  # fmt: skip


@pytest.mark.parametrize(("machine", "flags", "saturates"), [
    ("x86_64", "fpu sse2 avx2 fma", True),                # AVX2 only: 16-bit sums saturate
    ("x86_64", "fpu avx2 avx512f avx512bw", True),        # AVX-512 without VNNI too
    ("x86_64", "fpu avx2 avx512f avx512_vnni", False),
    ("x86_64", "fpu avx2 avx_vnni", False),
    ("aarch64", "fp asimd asimddp", False),               # ARM: not this problem
])
def test_which_cpus_saturate_8_bit_dot_products(tmp_path, monkeypatch, machine: str,
                                                 flags: str, saturates: bool) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    monkeypatch.setattr(runtime.platform, "machine", lambda: machine)
    runtime.integer_dot_saturates.cache_clear()
    try:
        assert runtime.integer_dot_saturates(str(info)) is saturates
        # an x86 CPU whose flags cannot be read counts as one that saturates
        assert runtime.integer_dot_saturates(str(tmp_path / "none")) is (machine == "x86_64")
    finally:
        runtime.integer_dot_saturates.cache_clear()


def test_a_saturating_cpu_runs_quantized_layers_in_float(monkeypatch) -> None:
    """The session option is set where the CPU saturates, and only there."""
    seen = []
    real = ort.InferenceSession

    def spy(source, options=None, **kwargs):  # type: ignore[no-untyped-def]
        try:
            seen.append(options.get_session_config_entry("session.disable_quant_qdq"))
        except Exception:  # not set (onnxruntime raises for a key it was not given)
            seen.append(None)
        return real(source, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    for saturates in (True, False):
        monkeypatch.setattr(runtime, "integer_dot_saturates", lambda s=saturates: s)
        runtime.create_session(builtin_model_path("arbitrary_predict"), RuntimeOptions())
    assert seen == ["1", None]
