"""The approximate speed levers (docs/performance.md), all off by default: FP8 matmuls in the transformer blocks,
diffusers' FirstBlockCache, and guidance on the first part of the steps only. They must reach the model through
the settings, stay within a bound of the exact frames, undo cleanly, refuse what cannot work with a clear message,
and never carry state from one render to the next."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from generator.pipelines import RenderCancelled, RenderRequest, fp8, guidance, load_backend, speed
from generator.pipelines._common import repeated_blocks
from generator.pipelines.ltx import LTXBackend
from generator.pipelines.tiny import TINY_LTX_PROFILE, build_tiny_ltx_pipeline
from generator.settings import GeneratorSettings

from .conftest import tiny_settings


def request(**changes: object) -> RenderRequest:
    values: dict = dict(
        prompt="a cat surfing", width=96, height=64, num_frames=17, seed=3, num_inference_steps=10, guidance_scale=3.0
    )
    values.update(changes)
    return RenderRequest(**values)


def levels(frames: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    difference = np.abs(frames.astype(np.int16) - reference.astype(np.int16))
    return int(difference.max()), float(difference.mean())


def computed_steps(pipeline) -> list[int]:
    """Counts the calls of the last block's attention: those steps ran every block (a skipped step does not)."""
    calls: list[int] = []
    pipeline.transformer.transformer_blocks[-1].attn1.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.fixture
def fresh_ltx() -> LTXBackend:
    """A tiny LTX of its own: these tests change the model in place."""
    return LTXBackend(build_tiny_ltx_pipeline(), TINY_LTX_PROFILE)


# --- FP8 -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_a_float8_linear_stays_within_float8s_rounding_of_the_exact_layer(bias: bool) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=bias)
    inputs = torch.randn(2, 7, 64) * torch.logspace(-2, 2, 7)[None, :, None]  # rows of very different magnitudes
    quantized = fp8.Float8Linear(linear)
    with torch.no_grad():
        expected, got = linear(inputs), quantized(inputs)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert quantized.weight.dtype == torch.float8_e4m3fn
    # e4m3 keeps 3 mantissa bits (relative step 1/16); per-row scales keep small rows as precise as large ones.
    for row in range(7):
        error = (got[:, row] - expected[:, row]).abs().max() / expected[:, row].abs().max()
        assert error < 0.08, (row, error)
    assert not torch.equal(got, expected)  # it really multiplied in float8


def test_fp8_converts_the_block_linears_only_and_restores_them_exactly(fresh_ltx) -> None:
    pipeline = fresh_ltx.pipeline
    exact = fresh_ltx.render(request())
    outside = {name: type(module) for name, module in pipeline.transformer.named_modules() if "blocks" not in name}
    replaced = fp8.quantize_transformers(pipeline)

    in_blocks = [m for m in pipeline.transformer.transformer_blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert in_blocks == [], "every block linear (all tiny widths are multiples of 16) is converted"
    assert len(replaced) == sum(isinstance(m, fp8.Float8Linear) for m in pipeline.transformer.modules()) > 0
    after = {name: type(module) for name, module in pipeline.transformer.named_modules() if "blocks" not in name}
    assert after == outside  # patch embedding, timestep and caption projections, final projection untouched
    assert pipeline.transformer.dtype == torch.float32  # diffusers still reads the model's dtype

    approximate = fresh_ltx.render(request())
    worst, mean = levels(approximate, exact)
    assert 0 < worst and mean < 2.0, (worst, mean)

    fp8.restore(replaced)
    assert np.array_equal(fresh_ltx.render(request()), exact)


def test_fp8_layers_whose_width_float8_cannot_take_stay_exact() -> None:
    block = torch.nn.Module()
    block.fits, block.odd = torch.nn.Linear(32, 16), torch.nn.Linear(24, 16)
    model = torch.nn.Module()
    model.transformer_blocks = torch.nn.ModuleList([block])
    fp8.quantize_blocks(model)
    assert isinstance(block.fits, fp8.Float8Linear) and type(block.odd) is torch.nn.Linear


def test_the_fp8_setting_reaches_both_model_families_and_renders(tiny_ltx, tiny_wan) -> None:
    for exact_backend, family in ((tiny_ltx, "auto"), (tiny_wan, "wan")):
        backend = load_backend(tiny_settings(family=family).model_copy(update={"fp8": True}))
        assert any(isinstance(m, fp8.Float8Linear) for m in backend.pipeline.transformer.modules())
        assert not any(isinstance(m, fp8.Float8Linear) for m in exact_backend.pipeline.transformer.modules())
        frames = backend.render(request(num_inference_steps=2))
        assert frames.shape == (17, 64, 96, 3)
        worst, mean = levels(frames, exact_backend.render(request(num_inference_steps=2)))
        assert 0 < worst and mean < 4.0, (family, worst, mean)


def test_fp8_refuses_a_gpu_without_float8_tensor_cores(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")
    with pytest.raises(RuntimeError, match=r"GENERATOR_FP8.*RTX 3090 is 8\.6.*GENERATOR_FP8=false"):
        fp8.check_fp8_support(torch.device("cuda"))


def test_fp8_is_off_by_default_and_reads_booleans() -> None:
    assert GeneratorSettings().fp8 is False
    assert GeneratorSettings(GENERATOR_FP8="true").fp8 is True
    with pytest.raises(ValidationError, match="GENERATOR_FP8"):
        GeneratorSettings(GENERATOR_FP8="fast")


# --- FirstBlockCache -------------------------------------------------------------------------------------------


def test_the_first_block_cache_skips_steps_and_stays_near_the_exact_frames(fresh_ltx) -> None:
    exact = fresh_ltx.render(request())
    calls = computed_steps(fresh_ltx.pipeline)
    speed.enable_first_block_cache(fresh_ltx.pipeline, 0.1)
    cached = fresh_ltx.render(request())
    assert 0 < len(calls) < 10, "some of the 10 steps ran only the first block"
    worst, mean = levels(cached, exact)
    assert 0 < worst and mean < 8.0, (worst, mean)

    speed.disable_first_block_cache(fresh_ltx.pipeline)
    assert np.array_equal(fresh_ltx.render(request()), exact)


def test_cached_blocks_compile_without_fullgraph_and_render_the_same(fresh_ltx) -> None:
    speed.enable_first_block_cache(fresh_ltx.pipeline, 0.1)
    requests = [request(), request(guidance_scale=1.0, width=64)]  # two shapes and both guidance paths
    eager = [fresh_ltx.render(each) for each in requests]
    try:
        speed.compile_blocks(fresh_ltx.pipeline, backend="eager")  # dynamo traces; no code generation on the CPU
        for each, expected in zip(requests, eager, strict=True):
            assert np.array_equal(fresh_ltx.render(each), expected)
    finally:
        speed.uncompile_blocks(fresh_ltx.pipeline)
        torch._dynamo.reset()


def test_the_first_block_cache_setting_reaches_both_families(tiny_wan) -> None:
    for family in ("auto", "wan"):
        backend = load_backend(tiny_settings(family=family).model_copy(update={"first_block_cache": 0.2}))
        assert backend.pipeline.transformer.is_cache_enabled
        assert backend.render(request(num_inference_steps=4)).shape == (17, 64, 96, 3)
    assert not tiny_wan.pipeline.transformer.is_cache_enabled  # off by default


def test_a_transformer_of_one_block_is_refused_with_the_reason(fresh_ltx) -> None:
    transformer = fresh_ltx.pipeline.transformer
    transformer.transformer_blocks = torch.nn.ModuleList(transformer.transformer_blocks[:1])
    with pytest.raises(ValueError, match=r"GENERATOR_FIRST_BLOCK_CACHE needs .* at least two blocks"):
        speed.enable_first_block_cache(fresh_ltx.pipeline, 0.1)


@pytest.mark.parametrize("value", ["-0.1", "1.5", "often"])
def test_a_first_block_cache_threshold_outside_0_to_1_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="GENERATOR_FIRST_BLOCK_CACHE"):
        GeneratorSettings(GENERATOR_FIRST_BLOCK_CACHE=value)
    assert GeneratorSettings().first_block_cache == 0.0


# --- Guidance on the first part of the steps ----------------------------------------------------------------------


def block_batches(backend) -> list[int]:
    """The batch size of every call of the first block: 2 on LTX's guided steps, 1 where only the prompt runs."""
    batches: list[int] = []
    first = repeated_blocks(backend.pipeline.transformer)[0]

    def record(module, args, kwargs, output) -> None:
        batches.append((kwargs.get("hidden_states") if "hidden_states" in kwargs else args[0]).shape[0])

    first.register_forward_hook(record, with_kwargs=True)
    return batches


@pytest.mark.parametrize(("stop", "steps", "guided"), [(0.5, 10, 5), (0.55, 10, 5), (0.01, 10, 1), (1.0, 10, 10)])
def test_guided_steps_follow_diffusers_guider_rule_and_keep_the_first(stop, steps, guided) -> None:
    assert guidance.guided_steps(stop, steps) == guided


def test_ltx_runs_the_prompts_half_alone_after_the_stop_and_returns_to_exact_without_it(fresh_ltx) -> None:
    exact = fresh_ltx.render(request())
    batches = block_batches(fresh_ltx)
    guidance.apply_guidance_stop(fresh_ltx.pipeline, 0.5)
    stopped = fresh_ltx.render(request())
    assert batches == [2] * 5 + [1] * 5
    assert not np.array_equal(stopped, exact)

    guidance.remove_guidance_stop(fresh_ltx.pipeline)
    assert np.array_equal(fresh_ltx.render(request()), exact)


def test_an_unguided_ltx_step_gives_both_halves_the_prompts_prediction(fresh_ltx) -> None:
    pipeline, transformer = fresh_ltx.pipeline, fresh_ltx.pipeline.transformer
    torch.manual_seed(0)
    batch = {
        "hidden_states": torch.randn(2, 2 * 2 * 3, 8),  # 2 latent frames of 2×3 patches, 8 channels
        "encoder_hidden_states": torch.randn(2, 32, 32),
        "timestep": torch.tensor([[500.0], [500.0]]),
        "encoder_attention_mask": torch.ones(2, 32),
        "num_frames": 2,
        "height": 2,
        "width": 3,
        "return_dict": False,
    }
    prompt_half = {k: v[1:] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    with torch.no_grad(), transformer.cache_context("cond_uncond"):
        plain = transformer(**batch)[0]
        alone = transformer(**prompt_half)[0]
    guidance.apply_guidance_stop(pipeline, 0.5)
    pipeline._num_timesteps = 2  # what the pipeline sets before its loop: step 0 guided, step 1 not
    with torch.no_grad():
        with transformer.cache_context("cond_uncond"):
            guided = transformer(**batch)[0]
        with transformer.cache_context("cond_uncond"):
            unguided = transformer(**batch)[0]
    assert torch.equal(guided, plain)
    assert unguided.shape == plain.shape
    assert torch.allclose(unguided[0], alone[0]) and torch.allclose(unguided[1], alone[0])
    assert not torch.allclose(unguided[0], plain[0])


def test_wan_skips_the_negative_call_exactly_as_diffusers_without_guidance_would(tiny_wan, monkeypatch) -> None:
    # Reference: diffusers' own loop with guidance switched off after step 4 (its callback may change the scale).
    from generator.pipelines import wan as wan_module

    def guidance_off_after_step_4(pipeline, step, timestep, tensors):
        if step == 4:
            pipeline._guidance_scale = 1.0
        return tensors

    with monkeypatch.context() as patched:
        patched.setattr(wan_module, "step_callback", lambda on_step, preview=None: guidance_off_after_step_4)
        reference = tiny_wan.render(request())
    backend = load_backend(tiny_settings(family="wan").model_copy(update={"guidance_stop": 0.5}))
    batches = block_batches(backend)
    assert np.array_equal(backend.render(request()), reference)
    assert len(batches) == 5 * 2 + 5, "guided steps call twice, the rest once"


@pytest.mark.parametrize(
    "lever",
    [
        lambda pipeline: speed.enable_first_block_cache(pipeline, 0.2),  # residuals of the cancelled steps
        lambda pipeline: guidance.apply_guidance_stop(pipeline, 0.5),  # the cancelled render's step count
    ],
    ids=["first-block-cache", "guidance-stop"],
)
def test_a_cancelled_render_leaves_nothing_behind_for_the_next(fresh_ltx, lever) -> None:
    # The same request cancelled part-way, then rendered whole. diffusers resets its hooks only at the end of a call
    # that finishes; this fails without the reset before each render.
    lever(fresh_ltx.pipeline)
    whole = fresh_ltx.render(request())

    def cancel(step: int, total: int) -> None:
        if step == 3:
            raise RenderCancelled()

    with pytest.raises(RenderCancelled):
        fresh_ltx.render(request(), cancel)
    assert np.array_equal(fresh_ltx.render(request()), whole)


def test_warm_up_compiles_both_batch_sizes_when_guidance_stops(fresh_ltx) -> None:
    fresh_ltx.profile = dataclasses.replace(TINY_LTX_PROFILE, default_guidance=3.0)  # LTX-Video's own default
    guidance.apply_guidance_stop(fresh_ltx.pipeline, 0.6)
    batches = block_batches(fresh_ltx)
    speed.warm_up(fresh_ltx)
    assert batches == [2, 1] * 3, "each native size: a guided first step, then an unguided one"


def test_guidance_stop_with_a_step_cache_compiles_and_renders_the_eager_frames(fresh_ltx) -> None:
    guidance.apply_guidance_stop(fresh_ltx.pipeline, 0.5)
    speed.enable_first_block_cache(fresh_ltx.pipeline, 0.1)
    eager = fresh_ltx.render(request())
    try:
        speed.compile_blocks(fresh_ltx.pipeline, backend="eager")
        assert np.array_equal(fresh_ltx.render(request()), eager)
    finally:
        speed.uncompile_blocks(fresh_ltx.pipeline)
        torch._dynamo.reset()


def test_the_guidance_stop_setting_is_off_by_default_and_refuses_values_outside_0_to_1(tiny_ltx) -> None:
    assert GeneratorSettings().guidance_stop == 1.0
    hooks = getattr(tiny_ltx.pipeline.transformer, "_diffusers_hook", None)  # none yet when this test runs alone
    assert hooks is None or hooks.get_hook(guidance.HOOK_NAME) is None
    for value in ("0", "1.5", "half"):
        with pytest.raises(ValidationError, match="GENERATOR_GUIDANCE_STOP"):
            GeneratorSettings(GENERATOR_GUIDANCE_STOP=value)
    backend = load_backend(tiny_settings().model_copy(update={"guidance_stop": 0.5}))
    assert backend.pipeline.transformer._diffusers_hook.get_hook(guidance.HOOK_NAME) is not None
