"""Wan's prompt and negative prompt in one transformer call per step (generator/pipelines/cfg_batch.py): the same
frames as diffusers' two calls, to a batch's rounding, with half the calls."""

from __future__ import annotations

import numpy as np
import pytest

from generator.pipelines import RenderRequest, guidance, speed
from generator.pipelines.cfg_batch import apply_one_batch_guidance, remove_one_batch_guidance
from generator.pipelines.tiny import TINY_WAN_PROFILE, build_tiny_wan_pipeline
from generator.pipelines.wan import WanBackend

pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")


def request(guidance_scale: float = 5.0) -> RenderRequest:
    return RenderRequest(
        prompt="a kite over the sea",
        negative_prompt="blurry",
        width=96,
        height=64,
        num_frames=17,
        seed=4,
        num_inference_steps=3,
        guidance_scale=guidance_scale,
    )


@pytest.fixture
def wan() -> WanBackend:
    return WanBackend(build_tiny_wan_pipeline(vace=False), TINY_WAN_PROFILE, prompt_cache_size=8)


def block_calls(backend: WanBackend) -> list[int]:
    calls: list[int] = []
    backend.pipeline.transformer.blocks[0].register_forward_hook(lambda module, args, output: calls.append(1))
    return calls


@pytest.mark.parametrize("cached_prompts", [True, False])
def test_one_batch_gives_the_two_calls_frames_with_half_the_calls(wan, cached_prompts) -> None:
    if not cached_prompts:
        wan.prompt_cache.size = 0  # the pipeline encodes the texts itself
    calls = block_calls(wan)
    two_calls = wan.render(request())
    assert len(calls) == 2 * 3, "diffusers: prompt and negative prompt, one call each, every step"

    (hook,) = apply_one_batch_guidance(wan.pipeline)
    calls.clear()
    one_batch = wan.render(request())

    assert len(calls) == 3 and hook.batched_calls == 3, "one call a step"
    difference = np.abs(one_batch.astype(np.int16) - two_calls.astype(np.int16))
    assert difference.max() <= 2 and difference.mean() < 0.05, (difference.max(), difference.mean())


def test_without_guidance_nothing_changes(wan) -> None:
    exact = wan.render(request(guidance_scale=1.0))
    (hook,) = apply_one_batch_guidance(wan.pipeline)
    assert np.array_equal(wan.render(request(guidance_scale=1.0)), exact) and hook.batched_calls == 0


def test_removing_it_gives_the_exact_frames_back(wan) -> None:
    exact = wan.render(request())
    apply_one_batch_guidance(wan.pipeline)
    wan.render(request())
    remove_one_batch_guidance(wan.pipeline)
    assert np.array_equal(wan.render(request()), exact)


def test_it_refuses_the_levers_whose_per_call_state_it_would_confuse(wan) -> None:
    guidance.apply_guidance_stop(wan.pipeline, 0.5)
    with pytest.raises(ValueError, match="GENERATOR_GUIDANCE_STOP"):
        apply_one_batch_guidance(wan.pipeline)
    guidance.remove_guidance_stop(wan.pipeline)
    speed.enable_first_block_cache(wan.pipeline, 0.1)
    with pytest.raises(ValueError, match="GENERATOR_FIRST_BLOCK_CACHE"):
        apply_one_batch_guidance(wan.pipeline)


def test_it_is_for_wan_only() -> None:
    from generator.pipelines.tiny import build_tiny_ltx_pipeline

    with pytest.raises(ValueError, match="Wan"):
        apply_one_batch_guidance(build_tiny_ltx_pipeline())
