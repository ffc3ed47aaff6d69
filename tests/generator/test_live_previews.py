"""Live previews of a render in progress: latents coloured by the map fitted from the model's own VAE, written every
few seconds while the tiny model renders, and served as the `preview` content variant with the Video object's
`preview_at`."""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import pytest
import torch
from PIL import Image

from generator.media.previews import LIVE_PREVIEW_MAX_BYTES, animated_preview
from generator.pipelines.base import RenderRequest, VideoBackend
from generator.pipelines.latent_rgb import LatentRGB
from generator.pipelines.ltx2 import _NO_GUIDANCE
from generator.pipelines.preview import LatentPreview, denoised_estimate, latents_to_rgb
from tests.support.generator_service import (
    SlowBackend,
    running_generator,
    sdk_client,
    tiny_backend,
    tiny_sound_backend,
    wait_until,
)


def test_latents_become_frames_of_latent_size_in_the_fitted_colours():
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(16, 21, 6, 10, generator=generator)
    colours = LatentRGB(torch.randn(16, 3, generator=generator) * 0.1, torch.tensor([0.1, -0.2, 0.3]), error=0.0)
    frames = latents_to_rgb(latents, colours, max_frames=16)
    assert frames.shape == (16, 6, 10, 3) and frames.dtype == np.uint8
    picked = np.linspace(0, 20, 16).round().astype(int)
    rgb = torch.einsum("cfhw,cr->fhwr", latents[:, picked], colours.factors) + colours.bias
    expected = rgb.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(frames, expected)
    with pytest.raises(ValueError, match="fitted for 16 latent channels, got 8"):
        latents_to_rgb(latents[:8], colours)


@pytest.mark.parametrize("channels", [128, 48, 16, 8, 7])
def test_without_fitted_colours_the_latent_channels_are_stretched_over_the_range(channels):
    latents = torch.randn(channels, 21, 6, 10, generator=torch.Generator().manual_seed(channels))
    frames = latents_to_rgb(latents, None, max_frames=16)
    assert frames.shape == (16, 6, 10, 3) and frames.dtype == np.uint8
    assert frames.min() == 0 and frames.max() == 255  # a picture over the whole range, not a flat colour


def test_the_denoised_estimate_of_an_euler_step_is_the_clean_latents():
    """x_t = (1 − σ)·x0 + σ·noise along a flow-matching path: two points on it give x0 back exactly."""
    clean, noise = torch.randn(2, 4, 3, 5, 5, generator=torch.Generator().manual_seed(1))

    class Scheduler:
        sigmas = torch.tensor([1.0, 0.7, 0.3, 0.0])

    before = (1 - 0.7) * clean + 0.7 * noise
    after = (1 - 0.3) * clean + 0.3 * noise
    estimate = denoised_estimate(Scheduler(), 1, before, after)
    assert torch.allclose(estimate, clean, atol=1e-5)
    assert denoised_estimate(Scheduler(), 0, None, after) is after  # the first step: nothing to compare with


def test_a_preview_fits_the_size_cap_and_loops():
    frames = np.random.default_rng(0).integers(0, 256, (16, 16, 24, 3), dtype=np.uint8)  # noise: the worst case
    data = animated_preview(frames, frame_ms=333)
    assert len(data) <= LIVE_PREVIEW_MAX_BYTES
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.is_animated and image.n_frames == 16
    assert max(image.size) <= 256


@pytest.mark.parametrize("backend_name", ["tiny_ltx", "tiny_wan"])
def test_a_render_hands_its_latents_to_the_preview_at_every_due_step(request, backend_name):
    backend = request.getfixturevalue(backend_name)
    shown: list[np.ndarray] = []
    preview = LatentPreview(backend.latent_rgb, 0.0, shown.append)  # due at every step
    size = backend.profile.size_multiple * 2
    render = RenderRequest(
        prompt="a cat", width=size, height=size, num_frames=17, seed=3, num_inference_steps=3, guidance_scale=1.0
    )
    frames = backend.render(render, preview=preview)
    assert len(frames) == 17 and len(shown) == 3
    spatial = 32 if backend.profile.family == "ltx" else 8  # the VAEs' compression
    temporal = backend.profile.frame_multiple
    assert shown[0].shape == ((17 - 1) // temporal + 1, size // spatial, size // spatial, 3)


class KeptLatents:
    """A preview observer due at every step that keeps the latents it is given."""

    def __init__(self) -> None:
        self.latents: list[torch.Tensor] = []

    def due(self) -> bool:
        return True

    def take(self, latents: torch.Tensor) -> None:
        self.latents.append(latents.detach().clone())


SOUND_RENDER = RenderRequest(
    prompt="rain on a tin roof", width=96, height=64, num_frames=17, seed=3, num_inference_steps=3, guidance_scale=1.0
)


@pytest.mark.parametrize("continues", [False, True], ids=["new", "continuation"])
def test_a_render_with_sound_hands_its_video_latents_to_the_preview_at_every_step(continues):
    backend = tiny_sound_backend()
    render = SOUND_RENDER
    if continues:
        render = dataclasses.replace(render, video=backend.render(render)[:9])
    kept = KeptLatents()
    frames, sound = backend.render_with_sound(render, preview=kept)
    assert len(kept.latents) == 3
    channels = backend.pipeline.transformer.config.in_channels
    latent_frames = (17 - 1) // backend.profile.frame_multiple + 1
    assert all(latents.shape == (channels, latent_frames, 64 // 32, 96 // 32) for latents in kept.latents)
    # The preview only watches: the same render without it gives the same frames and sound.
    unwatched_frames, unwatched_sound = backend.render_with_sound(render)
    assert np.array_equal(frames, unwatched_frames) and np.array_equal(sound, unwatched_sound)


def test_the_last_preview_of_a_render_with_sound_is_the_latents_its_pipeline_ends_with():
    """At the last step the denoised estimate is the loop's final latents: unpacked in the right order they equal
    what the pipeline itself returns as latents, back in the loop's normalised space."""
    backend = tiny_sound_backend()
    kept = KeptLatents()
    backend.render_with_sound(SOUND_RENDER, preview=kept)
    pipeline, render = backend.pipeline, SOUND_RENDER
    with torch.inference_mode():
        ending = pipeline(  # the backend's own call (a render at guidance 1), stopped at the latents
            prompt=render.prompt,
            width=render.width,
            height=render.height,
            num_frames=render.num_frames,
            frame_rate=float(backend.profile.fps),
            num_inference_steps=render.num_inference_steps,
            guidance_scale=render.guidance_scale,
            generator=torch.Generator("cpu").manual_seed(render.seed),
            output_type="latent",
            **_NO_GUIDANCE,
        ).frames
    vae = pipeline.vae
    normalised = pipeline._normalize_latents(ending, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    assert torch.allclose(kept.latents[-1], normalised[0], atol=1e-5)


@pytest.mark.parametrize("model", ["tiny", "tiny-sound"])
async def test_a_rendering_job_shows_its_preview_and_the_api_serves_it(tmp_path, model):
    backend = SlowBackend(tiny_sound_backend() if model == "tiny-sound" else tiny_backend(), step_delay=0.2)
    async with (
        running_generator(tmp_path, backend, GENERATOR_MODEL=model, GENERATOR_PREVIEW_SECONDS=0.3) as running,
        sdk_client(running) as client,
    ):
        video = await client.videos.create(prompt="a cat surfing", seconds="4", extra_body={"num_inference_steps": 6})
        assert video.model_extra["preview_at"] is None
        seen: dict[str, object] = {}

        async def previewed() -> bool:
            current = await client.videos.retrieve(video.id)
            seen["video"] = current
            return current.model_extra["preview_at"] is not None

        await wait_until(previewed, limit=60)
        assert seen["video"].status == "in_progress"  # shown before the render ends
        response = await client.videos.with_raw_response.download_content(video.id, variant="preview")
        assert response.headers["content-type"] == "image/webp"
        assert response.headers["cache-control"] == "no-store"
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "WEBP" and image.is_animated and image.n_frames > 1
        assert abs(seen["video"].model_extra["preview_at"] - time.time()) < 60


async def test_there_is_no_preview_until_one_is_made(tmp_path):
    import openai

    async with running_generator(tmp_path, GENERATOR_PREVIEW_SECONDS=0) as running, sdk_client(running) as client:
        video = await client.videos.create_and_poll(prompt="a cat", seconds="1", poll_interval_ms=50)
        assert video.status == "completed" and video.model_extra["preview_at"] is None
        with pytest.raises(openai.NotFoundError, match="no preview yet"):
            await client.videos.download_content(video.id, variant="preview")


class PreviewsKept:
    """Wraps a backend: the preview observer the worker hands each render goes on to it, recording the latents it
    takes and the frames it delivers from them."""

    def __init__(self, inner: VideoBackend) -> None:
        self.inner, self.profile, self.latent_rgb = inner, inner.profile, inner.latent_rgb
        self.observers: list[LatentPreview] = []
        self.shown: list[tuple[torch.Tensor, np.ndarray]] = []

    def render(self, request: RenderRequest, on_step=None, preview: LatentPreview | None = None) -> np.ndarray:
        if preview is not None:
            self.observers.append(preview)
            take, deliver, taken = preview.take, preview.deliver, []

            def taking(latents: torch.Tensor) -> None:
                taken.append(latents.detach().clone())
                take(latents)

            def delivering(frames: np.ndarray) -> None:
                self.shown.append((taken[-1], frames))
                deliver(frames)

            preview.take, preview.deliver = taking, delivering
        return self.inner.render(request, on_step, preview)


async def test_the_worker_s_previews_are_in_the_colours_fitted_from_the_backend_s_vae(tmp_path):
    backend = PreviewsKept(tiny_backend())
    async with (
        running_generator(tmp_path, backend, GENERATOR_PREVIEW_SECONDS=0.01) as running,
        sdk_client(running) as client,
    ):
        video = await client.videos.create_and_poll(
            prompt="a red ball", seconds="1", poll_interval_ms=50, extra_body={"num_inference_steps": 3}
        )
        assert video.status == "completed" and video.model_extra["preview_at"] is not None
    fitted = backend.latent_rgb
    assert isinstance(fitted, LatentRGB)  # load_backend fitted them from the tiny LTX's VAE
    assert backend.observers and all(observer.colours is fitted for observer in backend.observers)
    assert backend.shown
    for latents, frames in backend.shown:
        assert np.array_equal(frames, latents_to_rgb(latents, fitted))
        assert not np.array_equal(frames, latents_to_rgb(latents, None))
