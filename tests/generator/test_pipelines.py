"""The diffusers backends, exercised through the tiny models (random weights, real classes and loading path)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from generator.hub import ModelUnavailable
from generator.pipelines import (
    RenderCancelled,
    RenderRequest,
    detect_family,
    load_backend,
    resolve_device,
    resolve_dtype,
)
from generator.pipelines.ltx import LTXBackend
from generator.pipelines.tiny import (
    LTX_DEFAULT_SCHEDULER,
    PROFILE_FILE,
    TINY_LTX_PROFILE,
    build_tiny_ltx_pipeline,
    build_tiny_wan_pipeline,
    save_tiny_pipeline,
)
from generator.pipelines.wan import WanBackend, wan_profile

from .conftest import tiny_settings


def request(**changes: object) -> RenderRequest:
    values: dict = dict(
        prompt="a cat surfing at sunset",
        width=96,
        height=64,
        num_frames=17,
        seed=7,
        num_inference_steps=2,
        guidance_scale=1.0,
    )
    values.update(changes)
    return RenderRequest(**values)


def gradient_image(height: int = 64, width: int = 96) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    return np.stack([columns * 255 // (width - 1), rows * 255 // (height - 1), np.full_like(rows, 90)], -1).astype(
        np.uint8
    )


def spy_on_vae_encode(backend, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record what the pipeline hands its VAE encoder: the conditioning pixels, in the model's [-1, 1] range."""
    seen: list[torch.Tensor] = []
    vae = backend.pipeline.vae
    original = vae.encode

    def encode(pixels: torch.Tensor, *args, **kwargs):
        seen.append(pixels.detach().clone())
        return original(pixels, *args, **kwargs)

    monkeypatch.setattr(vae, "encode", encode)
    return seen


def test_tiny_render_has_the_requested_shape_and_dtype(tiny_ltx) -> None:
    landscape = tiny_ltx.render(request(width=96, height=64))
    portrait = tiny_ltx.render(request(width=64, height=96, num_frames=9))
    assert landscape.shape == (17, 64, 96, 3) and landscape.dtype == np.uint8
    assert portrait.shape == (9, 96, 64, 3) and portrait.dtype == np.uint8
    assert landscape.std() > 1, "a render is not a flat picture"


def test_same_seed_gives_the_same_frames_and_another_seed_does_not(tiny_ltx) -> None:
    first, again, other = (tiny_ltx.render(request(seed=seed)) for seed in (7, 7, 8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_prompt_reaches_the_model(tiny_ltx) -> None:
    assert not np.array_equal(tiny_ltx.render(request(prompt="a cat")), tiny_ltx.render(request(prompt="a dog")))


def test_guidance_uses_the_negative_prompt(tiny_ltx) -> None:
    plain = tiny_ltx.render(request(guidance_scale=3.0))
    negative = tiny_ltx.render(request(guidance_scale=3.0, negative_prompt="blurry"))
    assert not np.array_equal(plain, negative)


def test_saved_pipeline_loads_through_from_pretrained_and_renders_the_same(tiny_ltx, tmp_path: Path) -> None:
    folder = save_tiny_pipeline(tmp_path / "tiny-ltx")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "LTXConditionPipeline"
    loaded = load_backend(tiny_settings(model=str(folder)))
    assert loaded.profile == dataclasses.replace(TINY_LTX_PROFILE, name=str(folder))
    assert np.array_equal(loaded.render(request()), tiny_ltx.render(request()))


def test_model_family_comes_from_the_setting_the_folder_or_the_name(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanVACEPipeline"}))
    assert detect_family(str(tmp_path)) == "wan"
    assert detect_family("Lightricks/LTX-Video-0.9.7-distilled") == "ltx"
    assert detect_family("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") == "wan"
    assert detect_family("someone/custom-model", configured="wan") == "wan"
    with pytest.raises(ValueError, match="GENERATOR_MODEL_FAMILY"):
        detect_family("someone/custom-model")


def test_auto_dtype_is_bfloat16_on_a_gpu_and_float32_on_the_cpu() -> None:
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16


def test_a_gpu_torch_does_not_see_is_refused_with_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ModelUnavailable, match=r"GENERATOR_DEVICE=cuda: this torch is a CPU build"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(ModelUnavailable, match=r"torch sees no GPU \(is the NVIDIA driver installed"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ModelUnavailable, match=r"GENERATOR_DEVICE=cuda:2: this machine has 2 GPUs \(cuda:0 … cuda:1\)"):
        resolve_device("cuda:2")


def test_a_profile_file_with_unknown_fields_is_refused(tmp_path: Path) -> None:
    folder = save_tiny_pipeline(tmp_path / "tiny-ltx")
    (folder / PROFILE_FILE).write_text(json.dumps({"fps": 8, "frames_per_second": 8}))
    with pytest.raises(ValueError, match="frames_per_second"):
        load_backend(tiny_settings(model=str(folder)))


def test_the_image_reaches_the_model_as_the_first_frame(tiny_ltx, monkeypatch: pytest.MonkeyPatch) -> None:
    # Random weights cannot reconstruct a picture, so "first frame looks like the image" is a GPU benchmark
    # check; here we check the image arrives intact: right orientation, RGB order and [-1, 1] range.
    image = gradient_image()
    seen = spy_on_vae_encode(tiny_ltx, monkeypatch)
    with_image = tiny_ltx.render(request(image=image))
    assert len(seen) == 1 and seen[0].shape == (1, 3, 1, 64, 96)
    expected = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(seen[0][0, :, 0], expected, atol=1e-5, rtol=0)
    assert with_image.shape == (17, 64, 96, 3)
    assert not np.array_equal(with_image, tiny_ltx.render(request()))


def test_continuation_conditions_on_the_given_frames(tiny_ltx, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = tiny_ltx.render(request(seed=1))
    seen = spy_on_vae_encode(tiny_ltx, monkeypatch)
    continued = tiny_ltx.render(request(seed=2, video=earlier[-9:]))
    assert continued.shape == (17, 64, 96, 3), "the 9 conditioning frames come back re-rendered, then 8 new"
    assert len(seen) == 1 and seen[0].shape == (1, 3, 9, 64, 96)
    expected = torch.from_numpy(earlier[-9:]).permute(3, 0, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(seen[0][0], expected, atol=1e-5, rtol=0)


def test_a_scheduler_that_shifts_by_the_video_size_runs_the_schedule_ltx_pipeline_would() -> None:
    """LTX-Video 0.9.0/0.9.1 (the default model; the tiny model has its scheduler) ship a dynamically shifting
    scheduler, which LTXConditionPipeline alone refuses to run ("`mu` must be passed"): found by the first GPU run."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline

    pipeline = build_tiny_ltx_pipeline()
    assert pipeline.scheduler.config.use_dynamic_shifting
    backend = LTXBackend(pipeline, TINY_LTX_PROFILE)
    asked = request(width=160, height=96, num_inference_steps=4)

    frames = backend.render(asked)

    assert frames.shape == (17, 96, 160, 3)
    plain = LTXPipeline(
        **{**pipeline.components, "scheduler": FlowMatchEulerDiscreteScheduler(**LTX_DEFAULT_SCHEDULER)}
    )
    plain(prompt=asked.prompt, width=160, height=96, num_frames=17, num_inference_steps=4, output_type="latent")
    assert torch.allclose(pipeline.scheduler.timesteps, plain.scheduler.timesteps)
    assert torch.allclose(pipeline.scheduler.sigmas, plain.scheduler.sigmas)
    unshifted = build_tiny_ltx_pipeline()
    unshifted.scheduler = FlowMatchEulerDiscreteScheduler(**{**LTX_DEFAULT_SCHEDULER, "use_dynamic_shifting": False})
    LTXBackend(unshifted, TINY_LTX_PROFILE).render(asked)
    assert not torch.allclose(unshifted.scheduler.timesteps, plain.scheduler.timesteps)  # the shift matters

    # A second backend on the same pipeline runs the same schedule, and one step (0/0 in the stretch) still works.
    assert np.array_equal(LTXBackend(pipeline, TINY_LTX_PROFILE).render(asked), frames)
    one_step = backend.render(request(num_inference_steps=1))
    assert one_step.shape == (17, 64, 96, 3) and pipeline.scheduler.timesteps.tolist() == [1000.0]


def test_a_vae_that_decodes_at_a_timestep_gets_lightricks_decode_timestep_and_noise(monkeypatch) -> None:
    """LTX-Video 0.9.1+ VAEs are timestep-conditioned (the tiny one, like 0.9.0's, is not)."""
    from diffusers import AutoencoderKLLTXVideo

    from generator.pipelines.ltx import DECODE_TIMESTEP

    pipeline = build_tiny_ltx_pipeline()
    pipeline.vae = AutoencoderKLLTXVideo.from_config({**pipeline.vae.config, "timestep_conditioning": True}).eval()
    timesteps: list[torch.Tensor | None] = []
    decode = pipeline.vae.decode

    def spy(latents, temb=None, **kwargs):
        timesteps.append(temb)
        return decode(latents, temb, **kwargs)

    monkeypatch.setattr(pipeline.vae, "decode", spy)
    frames = LTXBackend(pipeline, TINY_LTX_PROFILE).render(request())
    assert frames.shape == (17, 64, 96, 3)
    assert timesteps and timesteps[0] is not None
    assert torch.allclose(timesteps[0].float(), torch.tensor(DECODE_TIMESTEP))


def test_cancelling_from_on_step_stops_the_render(tiny_ltx) -> None:
    steps: list[tuple[int, int]] = []

    def on_step(step: int, total: int) -> None:
        steps.append((step, total))
        raise RenderCancelled("job cancelled")

    with pytest.raises(RenderCancelled):
        tiny_ltx.render(request(num_inference_steps=3), on_step=on_step)
    assert steps == [(1, 3)], "diffusers does not swallow the exception or run further steps"


def test_every_step_is_reported(tiny_ltx) -> None:
    steps: list[tuple[int, int]] = []
    tiny_ltx.render(request(num_inference_steps=3), on_step=lambda step, total: steps.append((step, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_frames": 16}, "8k\\+1"),
        ({"width": 80}, "multiples of 32"),
        ({"image": np.zeros((64, 64, 3), np.uint8)}, "image must be"),
        ({"video": np.zeros((8, 64, 96, 3), np.uint8)}, "conditioning frames"),
        ({"image": np.zeros((64, 96, 3), np.uint8), "video": np.zeros((9, 64, 96, 3), np.uint8)}, "not both"),
    ],
)
def test_requests_the_model_cannot_take_are_refused_before_rendering(tiny_ltx, changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_ltx.render(request(**changes))


def test_wan_renders_starts_from_an_image_and_continues(tiny_wan) -> None:
    assert tiny_wan.profile.family == "wan" and tiny_wan.profile.supports_video
    first = tiny_wan.render(request())
    assert first.shape == (17, 64, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, tiny_wan.render(request()))
    assert tiny_wan.render(request(image=gradient_image())).shape == (17, 64, 96, 3)
    assert tiny_wan.render(request(video=first[-5:], num_frames=9)).shape == (9, 64, 96, 3)


def test_wan_text_to_video_pipeline_says_it_cannot_continue() -> None:
    pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")
    pipeline = build_tiny_wan_pipeline(vace=False)
    backend = WanBackend(pipeline, wan_profile("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", pipeline))
    assert not backend.profile.supports_image and not backend.profile.supports_video
    assert backend.profile.frame_multiple == 4 and backend.profile.size_multiple == 16
    assert backend.render(request(width=48, height=32, num_frames=5)).shape == (5, 32, 48, 3)
    with pytest.raises(ValueError, match="cannot continue"):
        backend.render(request(width=48, height=32, num_frames=9, video=np.zeros((5, 32, 48, 3), np.uint8)))


@pytest.mark.parametrize("family", ["ltx", "wan"])
def test_describing_a_saved_model_matches_loading_it(tmp_path, family):
    """An API-only generator validates requests with the same profile the workers get when they load the model."""
    if family == "wan":
        pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")
    from generator.pipelines.describe import describe_model

    folder = save_tiny_pipeline(tmp_path / family, family=family)
    settings = tiny_settings(model=str(folder))
    assert describe_model(settings) == load_backend(settings).profile
