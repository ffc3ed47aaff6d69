"""Speed levers (docs/performance.md): the prompt cache is exact, the attention backend and compile settings
reach the model, and warm-up renders every native size before the first request."""

from __future__ import annotations

import numpy as np
import pytest

from generator.pipelines import RenderRequest, load_backend, speed
from generator.pipelines._common import PromptCache
from generator.pipelines.ltx import LTXBackend
from generator.pipelines.tiny import TINY_LTX_PROFILE, build_tiny_ltx_pipeline
from generator.pipelines.wan import WanBackend
from generator.settings import GeneratorSettings

from .conftest import tiny_settings


def request(**changes: object) -> RenderRequest:
    values: dict = dict(
        prompt="a cat surfing", width=96, height=64, num_frames=17, seed=3, num_inference_steps=2, guidance_scale=1.0
    )
    values.update(changes)
    return RenderRequest(**values)


def count_encoder_calls(backend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    encoder = backend.pipeline.text_encoder
    original = encoder.forward

    def forward(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder, "forward", forward)
    return calls


@pytest.fixture(scope="module")
def ltx_pair() -> tuple[LTXBackend, LTXBackend]:
    """The same tiny model twice: without a prompt cache (diffusers encodes every call) and with one."""
    pipeline = build_tiny_ltx_pipeline()
    return LTXBackend(pipeline, TINY_LTX_PROFILE, prompt_cache_size=0), LTXBackend(pipeline, TINY_LTX_PROFILE, 8)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"guidance_scale": 3.0},
        {"guidance_scale": 3.0, "negative_prompt": "blurry, low quality"},
        {"guidance_scale": 3.0, "video": np.full((9, 64, 96, 3), 120, np.uint8)},
    ],
    ids=["no-guidance", "guidance", "negative", "continuation"],
)
def test_cached_prompt_embeddings_give_bit_identical_frames(ltx_pair, changes) -> None:
    plain, cached = ltx_pair
    cached.prompt_cache.clear()
    expected = plain.render(request(**changes))
    first, again = cached.render(request(**changes)), cached.render(request(**changes))
    assert np.array_equal(first, expected), "a miss (encoded by us) equals diffusers' own encoding"
    assert np.array_equal(again, expected), "a hit equals it too"


def test_a_repeat_skips_the_text_encoder_and_another_prompt_does_not(ltx_pair, monkeypatch) -> None:
    _, cached = ltx_pair
    cached.prompt_cache.clear()
    calls = count_encoder_calls(cached, monkeypatch)
    cached.render(request(guidance_scale=3.0))
    assert len(calls) == 2, "prompt and the empty negative prompt"
    cached.render(request(guidance_scale=3.0, seed=4))  # a re-roll
    assert len(calls) == 2
    cached.render(request(guidance_scale=3.0, prompt="a dog surfing"))
    assert len(calls) == 3, "a new prompt is encoded; the shared empty negative prompt is not"
    assert not np.array_equal(cached.render(request(prompt="a dog")), cached.render(request(prompt="a cat")))


def test_without_a_cache_every_render_encodes(ltx_pair, monkeypatch) -> None:
    plain, _ = ltx_pair
    calls = count_encoder_calls(plain, monkeypatch)
    plain.render(request())
    plain.render(request())
    assert len(calls) == 2 and len(plain.prompt_cache) == 0


def test_the_cache_forgets_the_least_recently_used_text() -> None:
    cache = PromptCache(2)
    computed: list[str] = []

    def get(key: str) -> object:
        return cache.get(key, lambda: computed.append(key) or key.upper())

    assert [get("a"), get("b"), get("a"), get("c"), get("a"), get("b")] == ["A", "B", "A", "C", "A", "B"]
    assert computed == ["a", "b", "c", "b"], "b was the least recently used when c came in"
    assert (cache.hits, cache.misses, len(cache)) == (2, 4, 2)


def test_the_load_path_gives_the_backend_its_cache_size() -> None:
    backend = load_backend(tiny_settings().model_copy(update={"prompt_cache_size": 5}))
    assert backend.prompt_cache.size == 5


def test_wan_cached_prompt_embeddings_give_bit_identical_frames(monkeypatch) -> None:
    pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")
    from generator.pipelines.tiny import TINY_WAN_PROFILE, build_tiny_wan_pipeline

    pipeline = build_tiny_wan_pipeline()
    plain, cached = WanBackend(pipeline, TINY_WAN_PROFILE, 0), WanBackend(pipeline, TINY_WAN_PROFILE, 4)
    for changes in ({}, {"guidance_scale": 4.0, "negative_prompt": "blurry"}):
        expected = plain.render(request(**changes))
        assert np.array_equal(cached.render(request(**changes)), expected)
        assert np.array_equal(cached.render(request(**changes)), expected)
    assert (cached.prompt_cache.hits, cached.prompt_cache.misses) == (4, 2), 'the prompt once, "blurry" once'


@pytest.mark.parametrize("name", ["flash_hub", "sage_hub", "flash_4_hub"])
def test_kernel_downloading_attention_backends_are_refused(name) -> None:
    with pytest.raises(ValueError, match="downloads its kernels"):
        GeneratorSettings(GENERATOR_ATTENTION_BACKEND=name)


def test_an_unknown_attention_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="_native_math"):
        GeneratorSettings(GENERATOR_ATTENTION_BACKEND="fastest")
    assert GeneratorSettings(GENERATOR_ATTENTION_BACKEND=" _Native_Math ").attention_backend == "_native_math"


def test_the_attention_backend_reaches_every_attention_layer_and_stays_within_tolerance(tiny_ltx) -> None:
    backend = load_backend(tiny_settings().model_copy(update={"attention_backend": "_native_math"}))
    processors = [
        module.processor
        for module in backend.pipeline.transformer.modules()
        if hasattr(getattr(module, "processor", None), "_attention_backend")
    ]
    assert processors and all(p._attention_backend.value == "_native_math" for p in processors)
    default = [
        module.processor
        for module in tiny_ltx.pipeline.transformer.modules()
        if hasattr(getattr(module, "processor", None), "_attention_backend")
    ]
    assert all(p._attention_backend is None for p in default), "native leaves diffusers' default dispatch alone"
    frames, reference = backend.render(request()), tiny_ltx.render(request())
    assert np.abs(frames.astype(int) - reference.astype(int)).max() <= 1


TORCH_ORDER = [1, 2, 0, 3, 4]  # torch's own SDPA kernel order: flash, memory-efficient, math, cuDNN, overrideable
CUDNN = 3


@pytest.fixture
def torch_attention_order():
    """cudnn_first sets torch's process-wide kernel order: give torch its own back whatever a test did."""
    import torch

    speed.prefer_cudnn_attention(False)
    assert torch._C._get_sdp_priority_order() == TORCH_ORDER
    yield
    speed.prefer_cudnn_attention(False)
    assert torch._C._get_sdp_priority_order() == TORCH_ORDER


def test_cudnn_first_puts_cudnn_first_in_torchs_order_before_compiling_and_native_gives_it_back(
    tiny_ltx, torch_attention_order, monkeypatch
) -> None:
    import torch

    assert GeneratorSettings(GENERATOR_ATTENTION_BACKEND=" CUDNN_First ").attention_backend == "cudnn_first"
    seen: list[list[int]] = []
    monkeypatch.setattr(speed, "compile_blocks", lambda pipeline: seen.append(torch._C._get_sdp_priority_order()))
    monkeypatch.setattr(speed, "warm_up", lambda backend: None)
    backend = load_backend(tiny_settings().model_copy(update={"attention_backend": "cudnn_first", "compile": "on"}))
    assert seen == [[CUDNN, 1, 2, 0, 4]], "compiled graphs pick their kernel when traced: the order is set before"
    processors = [m.processor for m in backend.pipeline.transformer.modules() if hasattr(m, "processor")]
    assert all(p._attention_backend is None for p in processors), "diffusers' dispatch stays torch SDPA"
    frames = backend.render(request())
    speed.set_attention_backend(backend.pipeline, "cudnn_first")  # set twice: still one hold on the order
    speed.set_attention_backend(backend.pipeline, "native")
    assert torch._C._get_sdp_priority_order() == TORCH_ORDER and not speed.cudnn_attention_preferred()
    # A preference, not a restriction: where cuDNN cannot run (here a CPU) torch's own kernels give the same frames.
    assert np.array_equal(frames, tiny_ltx.render(request()))


def test_compile_setting_compiles_blocks_statically_then_warms_up(monkeypatch) -> None:
    compiled: list[dict] = []
    warmed: list[object] = []
    monkeypatch.setattr(
        type(build_tiny_ltx_pipeline().transformer),
        "compile_repeated_blocks",
        lambda self, **kwargs: compiled.append(kwargs),
    )
    monkeypatch.setattr(speed, "warm_up", warmed.append)
    backend = load_backend(tiny_settings().model_copy(update={"compile": "on"}))
    assert compiled == [{"fullgraph": True, "dynamic": False}]
    assert warmed == [backend]
    load_backend(tiny_settings())
    assert len(compiled) == 1, "auto, the default, does not compile on the CPU"


def test_compile_setting_reads_auto_on_off_and_booleans() -> None:
    def compile_setting(value: str | None) -> str:
        environ = {} if value is None else {"GENERATOR_COMPILE": value}
        return GeneratorSettings(_env_file=None, **environ).compile

    assert compile_setting(None) == "auto"
    assert [compile_setting(v) for v in ("true", "1", "on", "YES")] == ["on"] * 4
    assert [compile_setting(v) for v in ("false", "0", "off", "no")] == ["off"] * 4
    with pytest.raises(ValueError, match="GENERATOR_COMPILE"):
        compile_setting("sometimes")


def test_auto_compiles_only_on_a_cuda_device_that_keeps_its_weights() -> None:
    import torch

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert speed.compile_wanted("auto", cuda, cpu_offload=False)
    assert not speed.compile_wanted("auto", cuda, cpu_offload=True)
    assert not speed.compile_wanted("auto", cpu, cpu_offload=False)
    assert speed.compile_wanted("on", cpu, cpu_offload=True)
    assert not speed.compile_wanted("off", cuda, cpu_offload=False)


def test_a_failed_compile_falls_back_to_eager_unless_insisted_on(monkeypatch) -> None:
    backend = load_backend(tiny_settings())
    reference = backend.render(request())

    def broken_compiler(_backend) -> None:
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(speed, "warm_up", broken_compiler)
    blocks = backend.pipeline.transformer.transformer_blocks
    assert speed.compile_and_warm_up(backend, insist=False) is False
    assert all(block._compiled_call_impl is None for block in blocks)
    assert np.array_equal(backend.render(request()), reference), "eager again: the same frames"
    with pytest.raises(RuntimeError, match="no C compiler"):
        speed.compile_and_warm_up(backend, insist=True)
    assert all(block._compiled_call_impl is not None for block in blocks), "`on` leaves the failure to the caller"


def test_warm_up_renders_every_native_size_at_full_length_and_forgets_its_prompt(ltx_pair, monkeypatch) -> None:
    _, cached = ltx_pair
    seen: list[RenderRequest] = []
    original = cached.render

    def render(request: RenderRequest, on_step=None):
        seen.append(request)
        return original(request, on_step)

    monkeypatch.setattr(cached, "render", render)
    seconds = speed.warm_up(cached)
    assert set(seconds) == set(TINY_LTX_PROFILE.native_sizes)
    assert [(r.width, r.height) for r in seen] == list(TINY_LTX_PROFILE.native_sizes.values())
    assert {(r.num_frames, r.num_inference_steps, r.guidance_scale) for r in seen} == {
        (TINY_LTX_PROFILE.max_segment_frames, speed.WARM_UP_STEPS, TINY_LTX_PROFILE.default_guidance)
    }
    assert len(cached.prompt_cache) == 0, "the warm-up prompt does not keep a slot"


def test_ltx2_cached_prompt_states_give_bit_identical_frames_and_sound(monkeypatch) -> None:
    """LTX-2 caches Gemma's hidden states; its connectors run on them inside the call, cached or not."""
    from generator.pipelines.ltx2 import LTX2Backend
    from generator.pipelines.tiny import TINY_SOUND_PROFILE, build_tiny_ltx2_pipeline

    pipeline = build_tiny_ltx2_pipeline()
    plain, cached = LTX2Backend(pipeline, TINY_SOUND_PROFILE, 0), LTX2Backend(pipeline, TINY_SOUND_PROFILE, 4)
    asks = ({}, {"guidance_scale": 3.0, "negative_prompt": "muffled"})
    expected = [plain.render_with_sound(request(**changes)) for changes in asks]  # the pipeline encodes each call
    calls = count_encoder_calls(cached, monkeypatch)  # the same pipeline: counted from here on
    for changes, (frames, sound) in zip(asks, expected, strict=True):
        for _ in range(2):  # a miss, then a hit
            again, again_sound = cached.render_with_sound(request(**changes))
            assert np.array_equal(again, frames) and np.array_equal(again_sound, sound)
    assert (cached.prompt_cache.hits, cached.prompt_cache.misses) == (4, 2), 'the prompt once, "muffled" once'
    assert len(calls) == 2  # the text encoder ran once per text
