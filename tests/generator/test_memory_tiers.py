"""GENERATOR_MEMORY tiers: diffusers' own hooks placed as each tier says, and renders that still come out right.

On the CPU the hooks run without CUDA streams (there are none); the GPU run of bench/gpu_session.sh measures the
peaks they buy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.catalog import PRESETS
from generator.pipelines import RenderRequest, load_backend
from generator.pipelines.memory import choose_tier, estimate_needs, place
from generator.pipelines.tiny import build_tiny_ltx_pipeline, build_tiny_wan_pipeline
from generator.settings import GeneratorSettings
from hanul_core.settings import SettingsError, load_settings
from tests.support.hub_cache import cache_tiny_like, preset_settings


def hooks_of(module: torch.nn.Module) -> set[str]:
    """Names of the diffusers hooks on `module` or any of its submodules."""
    names = set()
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None:
            names |= set(registry.hooks)
    return names


REQUEST = RenderRequest(
    prompt="a red kite over a beach",
    width=96,
    height=64,
    num_frames=17,
    seed=5,
    num_inference_steps=2,
    guidance_scale=1.0,
)


def render_with(tier: str) -> np.ndarray:
    from generator.pipelines.ltx import LTXBackend
    from generator.pipelines.tiny import TINY_LTX_PROFILE

    pipeline = build_tiny_ltx_pipeline()
    place(pipeline, tier, torch.device("cpu"), torch.float32)
    return LTXBackend(pipeline, TINY_LTX_PROFILE).render(REQUEST)


def test_full_keeps_every_part_without_hooks():
    pipeline = build_tiny_ltx_pipeline()
    place(pipeline, "full", torch.device("cpu"), torch.float32)
    assert not hooks_of(pipeline.transformer) and not hooks_of(pipeline.text_encoder)
    assert not pipeline.vae.use_tiling


def test_balanced_streams_the_text_encoder_and_tiles_the_vae():
    pipeline = build_tiny_ltx_pipeline()
    place(pipeline, "balanced", torch.device("cpu"), torch.float32)
    assert "group_offloading" in hooks_of(pipeline.text_encoder)
    assert not hooks_of(pipeline.transformer), "the transformer stays resident"
    assert pipeline.vae.use_tiling


def test_low_stores_the_transformers_in_float8_and_streams_everything():
    pipeline = build_tiny_wan_pipeline(vace=False, variant="2.2-a14b")
    place(pipeline, "low", torch.device("cpu"), torch.float32)
    for transformer in (pipeline.transformer, pipeline.transformer_2):
        assert {"layerwise_casting", "group_offloading"} <= hooks_of(transformer)
        stored = {p.dtype for name, p in transformer.named_parameters() if name.endswith("weight") and p.ndim == 2}
        assert torch.float8_e4m3fn in stored
    assert "group_offloading" in hooks_of(pipeline.text_encoder)
    assert "group_offloading" in hooks_of(pipeline.vae) and pipeline.vae.use_tiling


def test_balanced_renders_the_same_frames_as_full():
    assert np.array_equal(render_with("balanced"), render_with("full"))


def test_low_renders_near_full_despite_float8_weights():
    full, low = render_with("full").astype(np.int16), render_with("low").astype(np.int16)
    assert low.shape == full.shape
    assert not np.array_equal(low, full), "float8 storage is approximate"
    assert np.abs(low - full).mean() < 12, "…but a tiny model's frames stay close"


def test_auto_on_a_cpu_is_full_and_an_explicit_tier_is_kept():
    pipeline = build_tiny_ltx_pipeline()
    assert choose_tier("auto", torch.device("cpu"), None, pipeline) == "full"
    assert choose_tier("low", torch.device("cpu"), None, pipeline) == "low"


def test_auto_on_a_gpu_picks_by_free_memory(monkeypatch):
    needs = PRESETS["wan2.2-5b"].memory
    pipeline = build_tiny_ltx_pipeline()
    balanced_fits = needs.peak_gib("balanced") / 0.9 + 0.5  # a tenth is kept spare
    for free_gib, tier in ((80, "full"), (balanced_fits, "balanced"), (12, "low")):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device, free=free_gib: (free * 1024**3, 80 * 1024**3))
        assert choose_tier("auto", torch.device("cuda"), needs, pipeline) == tier


def test_a_model_outside_the_catalog_is_estimated_from_its_parameter_counts():
    pipeline = build_tiny_wan_pipeline(vace=False, variant="2.2-a14b")
    needs = estimate_needs(pipeline)
    one = sum(p.numel() for p in pipeline.transformer.parameters()) / 1e9
    assert needs.transformer_b == pytest.approx(2 * one)
    assert needs.largest_transformer_b == pytest.approx(one)
    assert needs.text_encoder_b > 0 and needs.peak_gib("full") > needs.peak_gib("low")


def test_the_tier_is_a_setting_with_a_clear_error():
    assert GeneratorSettings(GENERATOR_MEMORY="Balanced").memory == "balanced"
    with pytest.raises(SettingsError, match="GENERATOR_MEMORY"):
        load_settings(GeneratorSettings, GENERATOR_MEMORY="tiny")


def test_load_backend_places_a_preset_by_its_tier_and_reports_it(hub_cache, tmp_path):
    cache_tiny_like(hub_cache, "ltx-13b-distilled", tmp_path)
    backend = load_backend(preset_settings("ltx-13b-distilled", tmp_path / "data", GENERATOR_MEMORY="low"))
    assert backend.memory_tier == "low"
    assert "layerwise_casting" in hooks_of(backend.pipeline.transformer)
    frames = backend.render(
        RenderRequest(prompt="rain", width=64, height=64, num_frames=9, seed=2, num_inference_steps=2, guidance_scale=1)
    )
    assert frames.shape == (9, 64, 64, 3)


def test_hand_written_fp8_is_left_out_of_the_low_tier_which_stores_float8_already(hub_cache, tmp_path, caplog):
    cache_tiny_like(hub_cache, "wan2.1-1.3b", tmp_path)
    settings = preset_settings(
        "wan2.1-1.3b",
        tmp_path / "data",
        GENERATOR_MEMORY="low",
        GENERATOR_FP8=True,  # on a CPU this would be refused, were it applied
    )
    backend = load_backend(settings)
    assert backend.memory_tier == "low"
    assert "GENERATOR_FP8 is ignored in the low memory tier" in caplog.text
