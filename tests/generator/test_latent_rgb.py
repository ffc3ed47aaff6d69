"""Live previews' colours fitted from a model's own VAE: the fit recovers a known map from an encoder whose latents
are a linear function of the pixels they stand for, and on the tiny models' random VAEs (through their backends'
real encode and normalise) it runs, is deterministic, and colours clips it never saw better than the fallback."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from generator.pipelines import load_backend
from generator.pipelines.latent_rgb import (
    LatentRGB,
    block_means,
    calibration_clips,
    fit_backend_latent_rgb,
    fit_latent_rgb,
    moving_blobs,
)
from generator.pipelines.ltx2 import LTX2Backend
from generator.pipelines.preview import latents_to_rgb
from generator.pipelines.tiny import TINY_WAN_PROFILE, build_tiny_wan_pipeline
from generator.pipelines.wan import WanBackend
from tests.support.generator_service import tiny_sound_backend

from .conftest import tiny_settings

SPATIAL, TEMPORAL = 8, 4  # the synthetic encoder's compression, Wan's


def block_average_encoder(mixing: torch.Tensor, offset: torch.Tensor, shift: int = 0):
    """An encoder whose latent pixel is `mixing`ᵀ · (the mean colour of the pixels it stands for) + `offset`: the
    first frame alone, then each TEMPORAL frames; SPATIAL × SPATIAL pixels. `shift` rolls the latent grid by that
    many latent pixels across (latents that stand for other pixels than the fit assumes)."""

    def encode(video: torch.Tensor) -> torch.Tensor:
        count, _, frames, height, width = video.shape
        rest = video[:, :, 1:].reshape(count, 3, (frames - 1) // TEMPORAL, TEMPORAL, height, width).mean(3)
        per_frame = torch.cat([video[:, :, :1], rest], dim=2)
        grid = per_frame.reshape(count, 3, -1, height // SPATIAL, SPATIAL, width // SPATIAL, SPATIAL).mean((4, 6))
        grid = grid.roll(shift, dims=4)
        return torch.einsum("ncfhw,cd->ndfhw", grid, mixing) + offset.view(1, -1, 1, 1, 1)

    return encode


def test_the_fit_recovers_the_linear_map_of_an_encoder_of_block_averages():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(3, 3, generator=generator) + 2 * torch.eye(3)  # colour → latent, invertible
    offset = torch.randn(3, generator=generator)
    colours = fit_latent_rgb(block_average_encoder(mixing, offset), size_multiple=16, frame_multiple=TEMPORAL)
    inverse = torch.linalg.inv(mixing)  # latent → colour: (latent − offset) · mixing⁻¹
    # Within 1%: the fit's light ridge shrinks the factors by about RIDGE (0.1%) of the latents' variance.
    assert torch.allclose(colours.factors, inverse, rtol=1e-2, atol=1e-3)
    assert torch.allclose(colours.bias, -offset @ inverse, rtol=1e-2, atol=1e-3)
    assert colours.error < 5e-3


def test_more_latent_channels_than_colours_still_give_back_the_colours():
    generator = torch.Generator().manual_seed(1)
    mixing, offset = torch.randn(3, 12, generator=generator), torch.randn(12, generator=generator)
    encode = block_average_encoder(mixing, offset)
    colours = fit_latent_rgb(encode, size_multiple=16, frame_multiple=TEMPORAL)
    clips = calibration_clips(2 * TEMPORAL + 1, 64, 64, seed=5)  # other blobs than the fit's
    latents = encode(clips)
    shown = torch.einsum("ncfhw,cr->nrfhw", latents, colours.factors) + colours.bias.view(1, 3, 1, 1, 1)
    assert torch.allclose(shown, block_means(clips, tuple(latents.shape[2:])), atol=2e-2)


def test_latents_that_stand_for_other_pixels_leave_a_large_error():
    """The calibration clips' gradients and moving blobs tell which pixels a latent pixel stands for: a grid shifted
    by one latent pixel cannot be fitted (solid colours alone could not tell)."""
    mixing, offset = torch.eye(3), torch.zeros(3)
    aligned = fit_latent_rgb(block_average_encoder(mixing, offset), size_multiple=16, frame_multiple=TEMPORAL)
    shifted = fit_latent_rgb(block_average_encoder(mixing, offset, shift=1), size_multiple=16, frame_multiple=TEMPORAL)
    assert aligned.error < 5e-3 and shifted.error > 0.1


def test_the_calibration_clips_are_the_same_every_time_and_span_the_colour_cube():
    clips = calibration_clips(9, 64, 64)
    assert clips.shape == (23, 3, 9, 64, 64) and clips.dtype == torch.float32
    assert torch.equal(clips, calibration_clips(9, 64, 64))
    assert clips.min() == -1.0 and clips.max() == 1.0
    blobs = clips[-6:]
    assert (blobs[:, :, -1] - blobs[:, :, 0]).abs().amax() > 0.5  # the blobs move


def held_out_clips(frames: int, side: int) -> torch.Tensor:
    """Clips the fit never saw: solid colours off the cube's corners and greys, and blobs from another seed."""
    generator = torch.Generator().manual_seed(7)
    solids = [(torch.rand(3, generator=generator) * 2 - 1).view(3, 1, 1, 1) for _ in range(6)]
    clips = [solid.expand(3, frames, side, side) for solid in solids]
    clips += [moving_blobs(frames, side, side, generator) for _ in range(4)]
    return torch.stack(clips)


def preview_error(backend, colours: LatentRGB | None) -> float:
    """Mean distance in 0–255 levels between the previews of held-out clips (through the backend's real encode and
    normalise) and the true mean colours of the pixels each latent pixel stands for."""
    profile = backend.profile
    side, frames = 4 * profile.size_multiple, 2 * profile.frame_multiple + 1
    clips = held_out_clips(frames, side)
    with torch.inference_mode():
        latents = backend.encode_as_loop_latents(clips)
    truth = block_means(clips, tuple(latents.shape[2:])).movedim(1, -1).add(1).mul(127.5).round().clamp(0, 255)
    errors = [
        np.abs(latents_to_rgb(latents[index], colours).astype(np.float64) - truth[index].numpy()).mean()
        for index in range(len(clips))
    ]
    return float(np.mean(errors))


@pytest.mark.parametrize(("backend_name", "channels"), [("tiny_ltx", 8), ("tiny_wan", 16)])
def test_a_tiny_model_s_preview_colours_are_fitted_at_load_from_its_vae(request, backend_name, channels):
    backend = request.getfixturevalue(backend_name)
    colours = backend.latent_rgb  # load_backend fitted them
    assert isinstance(colours, LatentRGB)
    assert colours.factors.shape == (channels, 3) and colours.bias.shape == (3,)
    assert colours.factors.dtype == torch.float32 and torch.isfinite(colours.factors).all()
    again = fit_backend_latent_rgb(backend)
    assert torch.equal(again.factors, colours.factors) and torch.equal(again.bias, colours.bias)
    fitted, fallback = preview_error(backend, colours), preview_error(backend, None)
    assert fitted < fallback, (fitted, fallback)


def test_wan_2_2_s_48_channel_vae_and_ltx_2_s_get_fitted_colours_too():
    pipeline = build_tiny_wan_pipeline(vace=False, variant="2.2-5b")
    profile = dataclasses.replace(TINY_WAN_PROFILE, size_multiple=32)  # 16× VAE, 2×2 patches
    wan_2_2 = fit_backend_latent_rgb(WanBackend(pipeline, profile))
    assert wan_2_2 is not None and wan_2_2.factors.shape == (48, 3)
    sound = tiny_sound_backend()
    assert isinstance(sound, LTX2Backend)
    assert sound.latent_rgb is not None and sound.latent_rgb.factors.shape == (8, 3)


class Unencodable:
    """A backend whose VAE gives latents the fit cannot use (not finite)."""

    profile = TINY_WAN_PROFILE

    def encode_as_loop_latents(self, video: torch.Tensor) -> torch.Tensor:
        count, _, frames, height, width = video.shape
        return torch.full((count, 4, (frames - 1) // 4 + 1, height // 8, width // 8), float("nan"))


class WithoutVae:
    profile = TINY_WAN_PROFILE


@pytest.mark.parametrize("backend", [Unencodable(), WithoutVae()], ids=["failed fit", "no VAE"])
def test_a_backend_without_fitted_colours_gets_none_and_a_warning(backend, caplog):
    with caplog.at_level(logging.WARNING, logger="generator.pipelines.latent_rgb"):
        assert fit_backend_latent_rgb(backend) is None
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "previews will show its latent channels" in caplog.records[0].getMessage()


def test_with_previews_off_no_colours_are_fitted_at_load():
    backend = load_backend(tiny_settings().model_copy(update={"preview_seconds": 0.0}))
    assert backend.latent_rgb is None
