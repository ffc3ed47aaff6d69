"""FP8 through torchao (GENERATOR_FP8_KERNELS=torchao). Float8 needs an Ada/Hopper GPU, so on a CPU these tests check
the wiring: torchao's row-wise dynamic config reaches exactly the layers the built-in kernels convert, the originals
come back untouched, and a machine that cannot run it gets a clear error, not torchao's assertion."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from generator.pipelines import fp8, fp8_torchao, load_backend
from generator.pipelines._common import repeated_blocks
from generator.pipelines.tiny import build_tiny_ltx_pipeline
from generator.settings import GeneratorSettings

from .conftest import tiny_settings

# Most tests need torchao itself (the `gpu-speed` extra); the refusal without it and the setting's wiring do not.
needs_torchao = pytest.mark.skipif(
    importlib.util.find_spec("torchao") is None, reason="the gpu-speed extra (torchao) is not installed"
)


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[nn.Linear, object]]:
    """torchao's `quantize_` recorded instead of run (on a CPU it asserts a CUDA GPU), and the GPU check passed."""
    calls: list[tuple[nn.Linear, object]] = []
    monkeypatch.setattr("torchao.quantization.quantize_", lambda module, config: calls.append((module, config)))
    monkeypatch.setattr(fp8_torchao, "check_gpu", lambda: None)
    return calls


@needs_torchao
def test_the_config_is_torchaos_dynamic_float8_with_row_wise_scales() -> None:
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    config = fp8_torchao.float8_config()
    assert isinstance(config, Float8DynamicActivationFloat8WeightConfig)
    assert all(isinstance(granularity, PerRow) for granularity in _granularities(config))


@needs_torchao
def test_torchao_gets_exactly_the_layers_the_built_in_kernels_convert(recorded) -> None:
    pipeline = build_tiny_ltx_pipeline()
    built_in = fp8.quantize_transformers(pipeline)
    expected = [(type(parent).__name__, name, original.weight.shape) for parent, name, original in built_in]
    fp8.restore(built_in)

    replaced = fp8.quantize_transformers(pipeline, "torchao")

    assert [(type(parent).__name__, name, original.weight.shape) for parent, name, original in replaced] == expected
    assert len(recorded) == len(replaced) and all(isinstance(layer, nn.Linear) for layer, _ in recorded)
    for (parent, name, original), (layer, _) in zip(replaced, recorded, strict=True):
        assert getattr(parent, name) is layer, "the quantized layer sits where the original was"
        assert layer.weight.data_ptr() == original.weight.data_ptr(), "sharing the weight: no copy on the GPU"
    outside = [module for module in pipeline.transformer.proj_out.modules()]
    assert not any(layer is module for layer, _ in recorded for module in outside), "blocks only"


@needs_torchao
def test_the_originals_come_back_untouched(recorded) -> None:
    pipeline = build_tiny_ltx_pipeline()
    before = {name: tensor.clone() for name, tensor in pipeline.transformer.state_dict().items()}
    fp8.restore(fp8.quantize_transformers(pipeline, "torchao"))
    after = pipeline.transformer.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[key], after[key]) for key in before)
    assert all(
        type(layer) is nn.Linear
        for block in repeated_blocks(pipeline.transformer)
        for layer in block.modules()
        if isinstance(layer, nn.Linear)
    )


@needs_torchao
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_an_fp8_gpu_the_setting_says_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="GENERATOR_FP8_KERNELS=torchao needs a CUDA GPU with FP8 tensor cores"):
        fp8.quantize_transformers(build_tiny_ltx_pipeline(), "torchao")


def test_without_torchao_the_setting_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(RuntimeError, match=r"GENERATOR_FP8_KERNELS=torchao needs the torchao package.*gpu-speed"):
        fp8.quantize_transformers(build_tiny_ltx_pipeline(), "torchao")


def test_the_setting_picks_the_kernels_and_refuses_unknown_ones(monkeypatch) -> None:
    assert GeneratorSettings().fp8_kernels == "hanul"
    assert GeneratorSettings(GENERATOR_FP8_KERNELS="torchao").fp8_kernels == "torchao"
    with pytest.raises(ValidationError, match="GENERATOR_FP8_KERNELS"):
        GeneratorSettings(GENERATOR_FP8_KERNELS="cutlass")
    chosen = []
    monkeypatch.setattr(fp8, "check_fp8_support", lambda device: None)
    monkeypatch.setattr(fp8_torchao, "quantize_transformers", lambda pipeline, device: chosen.append(pipeline) or [1])
    settings = tiny_settings().model_copy(update={"fp8": True, "fp8_kernels": "torchao"})
    backend = load_backend(settings)
    assert chosen == [backend.pipeline]


def _granularities(config: object) -> list[object]:
    granularity = config.granularity
    return list(granularity) if isinstance(granularity, (list, tuple)) else [granularity]
