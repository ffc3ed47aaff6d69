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
from tests.generator.conftest import tiny_settings
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


def test_compact_keeps_the_transformers_on_board_in_float8_and_streams_only_the_text_encoder():
    pipeline = build_tiny_wan_pipeline(vace=False, variant="2.2-a14b")
    place(pipeline, "compact", torch.device("cpu"), torch.float32)
    for transformer in (pipeline.transformer, pipeline.transformer_2):
        assert hooks_of(transformer) == {"layerwise_casting"}, "stored in float8, never streamed"
        stored = {p.dtype for name, p in transformer.named_parameters() if name.endswith("weight") and p.ndim == 2}
        assert torch.float8_e4m3fn in stored
    assert "group_offloading" in hooks_of(pipeline.text_encoder)
    assert not hooks_of(pipeline.vae) and pipeline.vae.use_tiling


def test_compact_renders_exactly_what_low_renders():
    """Both compute from the same float8 weights; low only streams them. So compact has low's frames at a fraction
    of its PCIe traffic (none for the transformer)."""
    assert np.array_equal(render_with("compact"), render_with("low"))


def test_the_tiers_that_move_weights_are_not_compiled():
    """compact casts each layer between float8 and bf16 inside its call, low streams them: torch.compile's graphs
    cannot hold either (load_backend then leaves GENERATOR_COMPILE=auto off)."""
    from generator.pipelines.memory import weights_move

    assert [tier for tier in ("full", "balanced", "compact", "low") if weights_move(tier)] == ["compact", "low"]


def test_low_stores_the_transformers_in_float8_and_streams_everything():
    pipeline = build_tiny_wan_pipeline(vace=False, variant="2.2-a14b")
    place(pipeline, "low", torch.device("cpu"), torch.float32)
    for transformer in (pipeline.transformer, pipeline.transformer_2):
        assert {"layerwise_casting", "group_offloading"} <= hooks_of(transformer)
        stored = {p.dtype for name, p in transformer.named_parameters() if name.endswith("weight") and p.ndim == 2}
        assert torch.float8_e4m3fn in stored
    assert "group_offloading" in hooks_of(pipeline.text_encoder)
    assert "group_offloading" in hooks_of(pipeline.vae) and pipeline.vae.use_tiling


def weight_bytes(tensors) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def group_bytes(group) -> int:
    """What one diffusers offload group puts on the device when it onloads."""
    tensors = {id(t): t for module in group.modules for t in (*module.parameters(), *module.buffers())}
    tensors.update((id(t), t) for t in (*group.parameters, *group.buffers))
    return weight_bytes(tensors.values())


def most_on_board(monkeypatch, run) -> int:
    """The most bytes diffusers' offload groups had onloaded at once while `run()` ran: on a CPU the groups move
    nothing, but they onload and offload exactly as they would on a GPU."""
    from diffusers.hooks.group_offloading import ModuleGroup

    on_board: dict[int, int] = {}
    most = 0
    onload, offload = ModuleGroup.onload_, ModuleGroup.offload_

    def counted_onload(group):
        nonlocal most
        on_board[id(group)] = group_bytes(group)
        most = max(most, sum(on_board.values()))
        return onload(group)

    def counted_offload(group):
        on_board.pop(id(group), None)
        return offload(group)

    monkeypatch.setattr(ModuleGroup, "onload_", counted_onload)
    monkeypatch.setattr(ModuleGroup, "offload_", counted_offload)
    run()
    return most


def text_encoder_like(kind: str) -> torch.nn.Module:
    """Text encoders shaped like the presets' (T5-XXL, UMT5-XXL, Gemma 3: layers one or two modules down), small."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    shape = dict(vocab_size=64, d_model=64, d_kv=16, d_ff=256, num_layers=6, num_heads=4, dropout_rate=0.0)
    if kind == "t5":
        return T5EncoderModel(T5Config(**shape)).eval()
    if kind == "umt5":
        return UMT5EncoderModel(UMT5Config(**shape)).eval()
    config = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=16,
    )
    return Gemma3ForCausalLM(config).eval()


@pytest.mark.parametrize("kind", ["t5", "umt5", "gemma3"])
def test_the_text_encoder_is_on_board_a_layer_at_a_time_while_it_encodes(monkeypatch, kind):
    """The balanced and low tiers' point: the text encoder (T5-XXL 8.9 GiB, Gemma 3 12B 23 GiB) never sits on the GPU
    whole. Block level with diffusers' defaults found no blocks in transformers' encoders and onloaded them whole."""
    from generator.pipelines.memory import stream_layers

    encoder = text_encoder_like(kind)
    tokens = torch.randint(1, 64, (1, 24))
    with torch.no_grad():
        expected = encoder(tokens, output_hidden_states=True).hidden_states[-1]
        stream_layers(encoder, torch.device("cpu"), streams=False)
        encoded = {}
        most = most_on_board(
            monkeypatch, lambda: encoded.setdefault("h", encoder(tokens, output_hidden_states=True).hidden_states[-1])
        )
    total = weight_bytes([*encoder.parameters(), *encoder.buffers()])
    assert 0 < most <= total * 0.2, f"{most} of {total} bytes on board at once"
    assert torch.equal(encoded["h"], expected), "streaming changes where the weights are, not the encoding"


def test_streamed_weights_are_pinned_where_they_are_so_diffusers_copies_none(monkeypatch):
    """With CUDA streams diffusers pins a copy of every streamed weight and keeps the original until the weight first
    runs: host RAM held the streamed parts twice. Pinned in place first, its copy is the weight itself. (Pinning needs
    CUDA: here page-locking is played by a registry of "pinned" storages, with torch's documented rule that
    `pin_memory` returns an already pinned tensor itself.)"""
    from diffusers.hooks.group_offloading import ModuleGroup

    from generator.pipelines.memory import pin_in_place

    pinned: set[int] = set()

    def pin_memory(tensor, *args, **kwargs):
        if tensor.data_ptr() in pinned:
            return tensor
        copy = tensor.clone()
        pinned.add(copy.data_ptr())
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda tensor, *args, **kwargs: tensor.data_ptr() in pinned)

    def streamed_copies(layer: torch.nn.Module) -> dict:
        """What diffusers keeps in host memory for `layer` under streamed offload (its group's pinned dict)."""
        cpu = torch.device("cpu")
        group = ModuleGroup(
            modules=[layer],
            offload_device=cpu,
            onload_device=cpu,
            offload_leader=layer,
            onload_leader=layer,
            stream=object(),  # only whether there is one matters to what it pins
        )
        return group.cpu_param_dict

    encoder = text_encoder_like("t5")
    layer = encoder.encoder.block[0].layer[1].DenseReluDense.wi
    assert streamed_copies(layer)[layer.weight].data_ptr() != layer.weight.data_ptr(), "unpinned: a second copy"
    expected = layer.weight.detach().clone()
    pin_in_place(encoder)
    assert all(tensor.is_pinned() for tensor in encoder.parameters())
    assert streamed_copies(layer)[layer.weight].data_ptr() == layer.weight.data_ptr(), "pinned: the weight itself"
    assert torch.equal(layer.weight, expected)


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
    compact_fits = needs.peak_gib("compact") / 0.9 + 0.1
    for free_gib, tier in ((80, "full"), (balanced_fits, "balanced"), (compact_fits, "compact"), (12, "low")):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device, free=free_gib: (free * 1024**3, 80 * 1024**3))
        assert choose_tier("auto", torch.device("cuda"), needs, pipeline) == tier


def test_auto_with_fp8_counts_the_transformer_in_float8(monkeypatch):
    needs = PRESETS["ltx-13b-distilled"].memory
    pipeline = build_tiny_ltx_pipeline()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (23 * 1024**3, 24 * 1024**3))
    assert choose_tier("auto", torch.device("cuda"), needs, pipeline) == "compact"
    assert choose_tier("auto", torch.device("cuda"), needs, pipeline, fp8=True) == "balanced"


def test_compact_on_an_fp8_capable_card_suggests_fp8(monkeypatch):
    from generator.pipelines.memory import fp8_hint

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (8, 9))  # an RTX 4090
    assert "GENERATOR_FP8=true" in fp8_hint("compact", cuda, fp8=False)
    assert fp8_hint("compact", cuda, fp8=True) is None
    assert fp8_hint("balanced", cuda, fp8=False) is None
    assert fp8_hint("compact", torch.device("cpu"), fp8=False) is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (8, 6))  # an RTX 3090
    assert fp8_hint("compact", cuda, fp8=False) is None


def test_fp8_before_placing_makes_the_float8_layers_on_the_device_and_leaves_the_originals():
    """What a 24 GB card receives for the blocks: float8 weights made there one layer at a time, never the
    transformer in its own dtype; the originals stay in CPU memory untouched (the meta device stands in for the
    GPU: it holds shapes and dtypes, which is what is counted)."""
    from generator.pipelines.fp8 import Float8Linear, quantize_transformers

    pipeline = build_tiny_ltx_pipeline()
    before = {name: p for name, p in pipeline.transformer.named_parameters()}
    replaced = quantize_transformers(pipeline, "hanul", torch.device("meta"))
    assert replaced
    layers = [m for m in pipeline.transformer.modules() if isinstance(m, Float8Linear)]
    assert len(layers) == len(replaced)
    on_device = [t for layer in layers for t in (*layer.buffers(), *layer.parameters())]
    assert {t.device.type for t in on_device} == {"meta"}
    assert {layer.weight.dtype for layer in layers} == {torch.float8_e4m3fn}
    originals = [original for _, _, original in replaced]
    assert {p.device.type for original in originals for p in original.parameters()} == {"cpu"}
    original_bytes = sum(p.numel() * p.element_size() for original in originals for p in original.parameters())
    device_bytes = sum(t.numel() * t.element_size() for t in on_device)
    assert device_bytes < 0.35 * original_bytes  # float8 weights of float32 layers, plus scales and biases
    rest = [p for p in pipeline.transformer.parameters() if p.device.type != "meta"]
    assert rest and all(any(p is kept for kept in before.values()) for p in rest)  # the rest: placed by its tier


def test_fp8_in_the_balanced_tier_quantizes_before_placing_and_renders_as_in_full(caplog, monkeypatch):
    """Through load_backend: balanced with GENERATOR_FP8 makes the float8 layers on the device before the
    transformer is placed, and renders the frames full with GENERATOR_FP8 renders."""
    from generator.pipelines import fp8, memory
    from generator.pipelines.fp8 import Float8Linear

    calls = []
    quantize, place_ = fp8.quantize_transformers, memory.place
    monkeypatch.setattr(fp8, "quantize_transformers", lambda *a: calls.append(("quantize", a[2:])) or quantize(*a))
    monkeypatch.setattr(memory, "place", lambda *a: calls.append(("place", a[1])) or place_(*a))
    frames = {}
    for tier in ("full", "balanced"):
        calls.clear()
        settings = tiny_settings().model_copy(update={"memory": tier, "fp8": True})
        backend = load_backend(settings)
        assert calls == [("quantize", (torch.device("cpu"),)), ("place", tier)]
        assert backend.memory_tier == tier
        assert any(isinstance(m, Float8Linear) for m in backend.pipeline.transformer.modules())
        frames[tier] = backend.render(REQUEST)
    assert np.array_equal(frames["full"], frames["balanced"])
    assert "GENERATOR_FP8 is ignored" not in caplog.text


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


def test_a_host_short_of_ram_for_the_weights_is_warned_before_the_load(hub_cache, tmp_path, monkeypatch, caplog):
    """A load the system would stop for want of RAM says so first, with the figures and what to do."""
    from generator.pipelines import memory

    cache_tiny_like(hub_cache, "ltx-13b-distilled", tmp_path)
    needs = PRESETS["ltx-13b-distilled"].memory
    for available, warned in ((needs.host_ram_gib() - 3, True), (needs.host_ram_gib() + 3, False), (None, False)):
        monkeypatch.setattr(memory, "available_host_gib", lambda available=available: available)
        caplog.clear()
        with caplog.at_level("WARNING", logger="generator.pipelines.memory"):
            load_backend(preset_settings("ltx-13b-distilled", tmp_path / "data", GENERATOR_MEMORY="low"))
        said = [record.getMessage() for record in caplog.records if "host RAM" in record.getMessage()]
        assert bool(said) == warned, (available, said)
        if warned:
            assert f"about {needs.host_ram_gib():.0f} GiB" in said[0] and f"{available:.0f} GiB is available" in said[0]
            assert "python -m generator models" in said[0]


def test_available_host_memory_is_read_from_meminfo(tmp_path):
    from generator.pipelines.memory import available_host_gib

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32768000 kB\nMemFree:         1048576 kB\nMemAvailable:    8388608 kB\n")
    assert available_host_gib(meminfo) == 8.0
    assert available_host_gib(tmp_path / "absent") is None
    meminfo.write_text("MemTotal:       32768000 kB\n")
    assert available_host_gib(meminfo) is None


@pytest.mark.parametrize("tier", ["compact", "low"])
def test_hand_written_fp8_is_left_out_of_the_tiers_that_store_float8_already(hub_cache, tmp_path, caplog, tier):
    cache_tiny_like(hub_cache, "wan2.1-1.3b", tmp_path)
    settings = preset_settings(
        "wan2.1-1.3b",
        tmp_path / "data",
        GENERATOR_MEMORY=tier,
        GENERATOR_FP8=True,  # on a CPU this would be refused, were it applied
    )
    backend = load_backend(settings)
    assert backend.memory_tier == tier
    assert f"GENERATOR_FP8 is ignored in the {tier} memory tier" in caplog.text


# ------------------------------------------------------------------ a tier that does not fit, found at start


def out_of_memory_below(fitting: str):
    """A warm-up that runs out of GPU memory in every tier before `fitting`; it records each backend it saw."""
    seen = []

    def warm_up(backend):
        seen.append(backend)
        if backend.memory_tier != fitting:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {}

    return warm_up, seen


@pytest.fixture
def checks_fit(monkeypatch):
    """The start's fit check, which runs on a GPU, run on the CPU."""
    from generator.pipelines import memory

    monkeypatch.setattr(memory, "checks_fit", lambda device: True)


def test_auto_steps_down_a_tier_when_the_start_runs_out_of_memory(checks_fit, monkeypatch, caplog):
    import gc
    import weakref

    from generator.pipelines import speed

    warm_up, seen = out_of_memory_below("compact")
    monkeypatch.setattr(speed, "warm_up", warm_up)
    backend = load_backend(tiny_settings().model_copy(update={"memory": "auto"}))
    assert backend.memory_tier == "compact"
    assert [b.memory_tier for b in seen] == ["full", "balanced", "compact"]
    assert "memory tier full ran out of GPU memory at start; loading the model again in tier balanced" in caplog.text
    assert "memory tier balanced ran out of GPU memory at start; loading the model again in tier compact" in caplog.text
    failed = [weakref.ref(b.pipeline) for b in seen[:2]]
    seen.clear()
    gc.collect()
    assert [ref() for ref in failed] == [None, None], "a tier that did not fit leaves nothing holding its model"
    assert backend.render(REQUEST).shape == (17, 64, 96, 3)


def test_a_tier_set_by_hand_that_does_not_fit_stops_the_start_with_what_to_set(checks_fit, monkeypatch):
    from generator.pipelines import speed

    monkeypatch.setattr(speed, "warm_up", out_of_memory_below("none")[0])
    with pytest.raises(RuntimeError, match=r"in the balanced memory tier .* Set GENERATOR_MEMORY=compact \(or auto\)"):
        load_backend(tiny_settings().model_copy(update={"memory": "balanced"}))
    with pytest.raises(RuntimeError, match=r"in the low memory tier .* Set a smaller model"):
        load_backend(tiny_settings().model_copy(update={"memory": "auto"}))  # auto, down to low, and low too


def test_other_failures_of_the_warm_up_are_not_taken_for_memory(checks_fit, monkeypatch):
    from generator.pipelines import speed

    def broken(backend):
        raise ValueError("a broken model")

    monkeypatch.setattr(speed, "warm_up", broken)
    with pytest.raises(ValueError, match="a broken model"):
        load_backend(tiny_settings().model_copy(update={"memory": "auto"}))


def test_running_out_of_memory_while_compiling_is_not_a_compile_failure(monkeypatch):
    """compile_and_warm_up falls back to eager when compiling fails; running out of memory is the tier's."""
    from generator.pipelines import speed

    backend = load_backend(tiny_settings())
    monkeypatch.setattr(speed, "compile_blocks", lambda pipeline: None)
    monkeypatch.setattr(speed, "warm_up", out_of_memory_below("none")[0])
    with pytest.raises(torch.cuda.OutOfMemoryError):
        speed.compile_and_warm_up(backend, insist=False)

    def compile_error(backend):
        raise RuntimeError("inductor failed")

    monkeypatch.setattr(speed, "warm_up", compile_error)
    assert speed.compile_and_warm_up(backend, insist=False) is False  # this one is the compiler's: eager


def test_a_start_whose_compile_failed_still_checks_the_fit_eagerly(checks_fit, monkeypatch, caplog):
    from generator.pipelines import speed

    def compile_fails(pipeline):
        raise RuntimeError("inductor failed")

    warm_up, seen = out_of_memory_below("balanced")
    monkeypatch.setattr(speed, "compile_blocks", compile_fails)
    monkeypatch.setattr(speed, "warm_up", warm_up)
    monkeypatch.setattr(speed, "compile_wanted", lambda setting, device, weights_move: True)  # as on a GPU
    backend = load_backend(tiny_settings().model_copy(update={"memory": "auto", "compile": "auto"}))
    assert "compiling failed; running eagerly" in caplog.text
    assert backend.memory_tier == "balanced" and [b.memory_tier for b in seen] == ["full", "balanced"]
