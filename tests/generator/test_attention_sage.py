"""GENERATOR_ATTENTION_BACKEND=sage: SageAttention through diffusers' dispatcher, opt-in and approximate. A CPU can
run none of it, so these tests check what reaches the model and that a machine without it is told why."""

from __future__ import annotations

import pytest
import torch

from generator.pipelines import speed
from generator.pipelines._common import repeated_blocks
from generator.pipelines.tiny import build_tiny_ltx_pipeline, build_tiny_wan_pipeline
from generator.settings import GeneratorSettings


def test_the_setting_accepts_sage() -> None:
    assert GeneratorSettings(GENERATOR_ATTENTION_BACKEND="sage").attention_backend == "sage"


def test_without_the_package_or_a_gpu_sage_is_refused_naming_both(monkeypatch) -> None:
    monkeypatch.setattr("diffusers.utils.is_sageattention_available", lambda: False)
    with pytest.raises(RuntimeError) as refused:
        speed.set_attention_backend(build_tiny_ltx_pipeline(), "sage")
    message = str(refused.value)
    assert "GENERATOR_ATTENTION_BACKEND=sage needs the sageattention package >= 2.1.1 (not installed)" in message
    assert "a CUDA GPU (the model is on cpu)" in message and "GENERATOR_ATTENTION_BACKEND=native" in message


def test_pypis_sageattention_1_is_refused_as_too_old(monkeypatch) -> None:
    monkeypatch.setattr("diffusers.utils.is_sageattention_available", lambda: True)
    monkeypatch.setattr("diffusers.utils.is_sageattention_version", lambda operation, version: False)
    monkeypatch.setattr("importlib.metadata.version", lambda name: "1.0.6")
    with pytest.raises(RuntimeError, match=r"1\.0\.6 is installed; PyPI has only 1\.x"):
        speed.check_sage(torch.device("cuda"))


def test_with_the_package_on_a_gpu_nothing_is_refused(monkeypatch) -> None:
    monkeypatch.setattr("diffusers.utils.is_sageattention_available", lambda: True)
    monkeypatch.setattr("diffusers.utils.is_sageattention_version", lambda operation, version: True)
    speed.check_sage(torch.device("cuda", 0))


@pytest.mark.parametrize("build", [build_tiny_ltx_pipeline, lambda: build_tiny_wan_pipeline(vace=False)])
def test_sage_goes_on_self_attention_only_where_no_mask_is_passed(monkeypatch, build) -> None:
    from diffusers.models.attention_dispatch import AttentionBackendName

    monkeypatch.setattr(speed, "check_sage", lambda device: None)
    monkeypatch.setattr(
        "diffusers.models.attention_dispatch._check_attention_backend_requirements", lambda backend: None
    )
    pipeline = build()
    speed.set_attention_backend(pipeline, "sage")
    blocks = repeated_blocks(pipeline.transformer)
    assert all(block.attn1.processor._attention_backend == AttentionBackendName.SAGE for block in blocks)
    assert all(block.attn2.processor._attention_backend is None for block in blocks), "cross-attention: SDPA"
