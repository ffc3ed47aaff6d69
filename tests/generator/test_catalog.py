"""The model catalog: its data follows each model's rules, and every preset loads and renders through the real path
(hub cache → locked commit → `from_pretrained` with the preset's class) with a tiny model shaped like its repo."""

from __future__ import annotations

import json
import re

import diffusers
import pytest
import torch

from generator.catalog import DEFAULT_PRESET, PRESETS, MemoryNeeds, cards_that_fit, find_preset, pick_tier
from generator.hub import LOCK_FILE, ModelNotDownloaded, ModelUnavailable, identify, read_lock, resolve_model
from generator.pipelines import RenderRequest, load_backend
from generator.pipelines.describe import describe_model
from generator.pipelines.tiny import build_tiny_like
from generator.settings import GeneratorSettings
from tests.support.hub_cache import cache_tiny_like, fake_commit, preset_settings, put_in_cache

PRESET_NAMES = sorted(PRESETS)


# ------------------------------------------------------------------------------------------------------ the data


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_each_preset_names_a_pipeline_class_diffusers_ships_of_its_family(name):
    preset = PRESETS[name]
    pipeline_class = getattr(diffusers, preset.pipeline_class)
    assert preset.family in pipeline_class.__name__.lower()
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", preset.repo)
    assert preset.revision is None or re.fullmatch(r"[0-9a-f]{40}", preset.revision), "a full commit hash or none"


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_each_preset_follows_its_models_size_and_frame_rules(name):
    preset = PRESETS[name]
    for width, height in preset.native_sizes.values():
        assert width % preset.size_multiple == 0 and height % preset.size_multiple == 0
    assert set(preset.native_sizes) == {"landscape", "portrait", "square"}
    assert (preset.max_segment_frames - 1) % preset.frame_multiple == 0
    assert (preset.conditioning_frames - 1) % preset.frame_multiple == 0
    assert preset.conditioning_frames < preset.max_segment_frames
    if preset.timesteps is not None:
        assert len(preset.timesteps) == preset.default_steps
        assert list(preset.timesteps) == sorted(preset.timesteps, reverse=True)
    if preset.distilled:
        assert preset.default_steps <= 10, "a distilled checkpoint runs its own few steps"
    assert preset.download_gib > 0 and preset.why


def test_the_default_is_a_current_distilled_checkpoint_and_the_settings_default():
    preset = PRESETS[DEFAULT_PRESET]
    assert preset.distilled and preset.revision is None  # newest LTX-Video, locked at download
    assert "0.9.8" in preset.repo
    assert GeneratorSettings.model_fields["model"].default == DEFAULT_PRESET


def test_the_catalog_has_a_fast_default_a_quality_preset_and_the_two_wan_sizes():
    repos = {preset.repo for preset in PRESETS.values()}
    assert {"Wan-AI/Wan2.2-TI2V-5B-Diffusers", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"} <= repos
    assert "Wan-AI/Wan2.2-T2V-A14B-Diffusers" in repos


def test_presets_are_found_by_name_or_repo_in_any_case():
    assert find_preset("LTX-13B-Distilled") is PRESETS["ltx-13b-distilled"]
    assert find_preset("wan-ai/wan2.2-ti2v-5b-diffusers") is PRESETS["wan2.2-5b"]
    assert find_preset("someone/else") is None


def test_memory_estimates_shrink_from_full_to_low_and_pick_the_fastest_tier_that_fits():
    needs = PRESETS["wan2.2-5b"].memory
    assert needs.peak_gib("full") > needs.peak_gib("balanced") > needs.peak_gib("compact") > needs.peak_gib("low")
    assert pick_tier(needs, 80) == "full"
    assert pick_tier(needs, needs.peak_gib("balanced") / 0.9 + 0.1) == "balanced"
    assert pick_tier(needs, needs.peak_gib("compact") / 0.9 + 0.1) == "compact"
    assert pick_tier(needs, 8) == "low"
    with pytest.raises(ValueError, match="unknown memory tier"):
        needs.peak_gib("huge")


def test_the_legacy_2b_estimate_matches_its_measured_peak():
    """The one peak measured (17.8 GiB, H100, 768x512x121 with guidance) anchors the estimates."""
    assert PRESETS["ltx-2b-legacy"].memory.peak_gib("full") == pytest.approx(17.8, abs=0.3)


def test_a_measured_peak_replaces_the_estimate_for_its_tier_only():
    needs = PRESETS["ltx-13b-distilled"].memory
    assert needs.is_measured("low") and needs.peak_gib("low") == 14.4
    assert needs.peak_gib("low") != needs.estimated_gib("low")
    legacy = PRESETS["ltx-2b-legacy"].memory
    assert not legacy.is_measured("full") and legacy.peak_gib("full") == legacy.estimated_gib("full")


def test_the_default_model_fits_a_24_gb_card_without_streaming_its_transformer():
    """LTX-Video 13B's transformer is 24 GiB in bf16, more than a 24 GB card holds beside anything else: compact
    keeps it on board in float8 (12 GiB), so such a card (RTX 3090, 4090) no longer needs low's streaming."""
    needs = PRESETS["ltx-13b-distilled"].memory
    assert cards_that_fit(needs, "balanced") == [] and cards_that_fit(needs, "compact") == [24]
    free_on_a_24_gb_card = 23.0  # what CUDA reports free at start on a 24 GB card without a desktop
    assert pick_tier(needs, free_on_a_24_gb_card) == "compact"


def test_with_fp8_a_24_gb_ada_card_runs_the_default_model_balanced():
    """GENERATOR_FP8 quantizes the transformer blocks on their way to the GPU, so balanced holds the 13B in float8
    as compact does, with float8 matmuls that compile; auto counts that and passes compact over."""
    needs = PRESETS["ltx-13b-distilled"].memory
    assert needs.peak_gib("balanced", fp8=True) == needs.peak_gib("compact")  # the same parts, the same dtypes
    assert needs.peak_gib("full", fp8=True) < needs.peak_gib("full")
    assert needs.peak_gib("compact", fp8=True) == needs.peak_gib("compact")  # fp8 is ignored there
    assert pick_tier(needs, 23.0, fp8=True) == "balanced"
    assert pick_tier(needs, 80, fp8=True) == "full"
    assert pick_tier(needs, 8, fp8=True) == "low"


def test_cards_that_fit_leaves_a_margin():
    needs = MemoryNeeds(transformer_b=5.0, text_encoder_b=0.0, vae_b=0.0, activations_gib=0.0, untiled_decode_gib=0.0)
    peak = needs.peak_gib("full")  # 9.3 + 1 GiB overhead
    assert cards_that_fit(needs, "full") == [card for card in (8, 12, 16, 24) if peak <= card * 0.95]
    assert 8 not in cards_that_fit(needs, "full")


# -------------------------------------------------------------------------------------------- naming a model


def test_a_model_name_is_a_preset_a_hub_id_a_folder_or_tiny(tmp_path):
    assert identify("ltx-13b-distilled").preset is PRESETS["ltx-13b-distilled"]
    assert identify("someone/video-model").repo == "someone/video-model"
    assert identify(str(tmp_path)).folder == tmp_path
    assert identify("tiny").is_tiny
    with pytest.raises(ModelUnavailable, match="not a preset, a hub id"):
        identify("ltx-video-best")
    with pytest.raises(ModelUnavailable, match="no such folder"):
        identify("./models/missing")


def test_a_model_that_is_not_downloaded_says_which_command_fetches_it(hub_cache, tmp_path):
    with pytest.raises(ModelNotDownloaded) as raised:
        resolve_model("wan2.2-5b", tmp_path / "data")
    message = str(raised.value)
    assert "python -m generator download wan2.2-5b" in message
    assert "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in message
    assert len(message.splitlines()) <= 4


def test_a_model_found_in_the_cache_is_locked_at_that_commit_and_later_commits_do_not_move_it(hub_cache, tmp_path):
    data = tmp_path / "data"
    commit = cache_tiny_like(hub_cache, "wan2.1-1.3b", tmp_path)
    source = resolve_model("wan2.1-1.3b", data)
    assert source.revision == commit and source.folder.name == commit
    assert read_lock(data)["Wan-AI/Wan2.1-T2V-1.3B-Diffusers"]["revision"] == commit
    # The hub's main moves (another tool fetched a newer commit): the installation stays on its lock.
    newer = fake_commit("newer")
    put_in_cache(hub_cache, "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", source.folder, newer)
    assert resolve_model("wan2.1-1.3b", data).revision == commit


def test_a_broken_lock_file_is_a_clear_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / LOCK_FILE).write_text("{not json")
    with pytest.raises(ModelUnavailable, match="delete it"):
        resolve_model("wan2.1-1.3b", data)


# ----------------------------------------------------------------------------------- every preset, tiny, end to end


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_each_preset_loads_from_its_locked_commit_with_its_class_and_renders(name, hub_cache, tmp_path):
    pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")
    preset = PRESETS[name]
    commit = cache_tiny_like(hub_cache, name, tmp_path)
    settings = preset_settings(name, tmp_path / "data")
    backend = load_backend(settings)
    assert type(backend.pipeline).__name__ == preset.pipeline_class
    assert backend.profile.family == preset.family and backend.profile.fps == preset.fps
    assert backend.profile.native_sizes == preset.native_sizes
    assert (backend.profile.default_steps, backend.profile.default_guidance) == (
        preset.default_steps,
        preset.default_guidance,
    )
    assert backend.profile.supports_video == preset.supports_video
    assert describe_model(settings) == backend.profile, "an API-only host must describe the model the same way"
    assert read_lock(settings.data_dir)[preset.repo]["revision"] == commit
    size = 2 * preset.size_multiple
    frames = backend.render(
        RenderRequest(
            prompt="a lighthouse in a storm",
            width=size,
            height=size,
            num_frames=preset.frame_multiple + 1,
            seed=3,
            num_inference_steps=2,
            guidance_scale=preset.default_guidance,
        )
    )
    assert frames.shape == (preset.frame_multiple + 1, size, size, 3)


def test_the_distilled_default_runs_its_own_timestep_schedule(hub_cache, tmp_path):
    cache_tiny_like(hub_cache, "ltx-13b-distilled", tmp_path)
    backend = load_backend(preset_settings("ltx-13b-distilled", tmp_path / "data"))
    seen: list[float] = []

    def record(step: int, total: int) -> None:
        seen.append(float(backend.pipeline.scheduler.timesteps[step - 1]))

    request = RenderRequest(
        prompt="a fox", width=64, height=64, num_frames=9, seed=1, num_inference_steps=8, guidance_scale=1.0
    )
    backend.render(request, on_step=record)
    assert seen == pytest.approx(list(PRESETS["ltx-13b-distilled"].timesteps), rel=1e-4)
    # Another step count falls back to the pipeline's own schedule.
    seen.clear()
    backend.render(RenderRequest(**{**request.__dict__, "num_inference_steps": 3}), on_step=record)
    assert len(seen) == 3 and seen[0] == pytest.approx(1000.0)


def test_a_local_folder_needs_no_cache_and_no_lock(tmp_path):
    folder = tmp_path / "my-ltx"
    build_tiny_like(PRESETS["ltx-13b-distilled"]).save_pretrained(folder)
    settings = preset_settings(str(folder), tmp_path / "data")
    backend = load_backend(settings)
    assert backend.profile.family == "ltx"
    assert not (settings.data_dir / LOCK_FILE).exists()
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "LTXConditionPipeline"
    assert isinstance(backend.pipeline.transformer, torch.nn.Module)
