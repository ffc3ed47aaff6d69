"""Live previews of a render in progress: the denoiser's current estimate of the finished latents, turned into
colour with the latent-to-RGB map fitted from the loaded model's own VAE (latent_rgb.py), at latent resolution. No
VAE decode: a preview costs one small matrix product on the device and a few kilobytes copied to the CPU.

The loop only holds the noisy latents of each step. For flow-matching schedulers (LTX-Video's Euler, Wan's UniPC
with flow sigmas) two consecutive steps give the model's own estimate of the clean latents:
x_next = x_prev + (σ_next − σ_prev)·v, so x0 ≈ x_next − σ_next·v. Early steps show the composition the model has
settled on, not noise; for Euler the estimate is exact, for a multistep solver close.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .latent_rgb import LatentRGB, fallback_factors

PREVIEW_FRAMES = 16  # latent frames shown at most (LTX 121 frames = 16 latent frames, Wan 81 = 21)


class LatentPreview:
    """Handed to a backend's `render`: asked after each denoising step whether a preview is due (`due`), and given
    the step's latents as (C, F, H, W) when it is (`take`). Runs on the GPU thread: `deliver` gets (F, H, W, 3)
    uint8 frames and must not block (it hands them to another thread). `colours` is the backend's fitted
    latent-to-RGB map; None shows the latent channels stretched over the range (`fallback_factors`)."""

    def __init__(
        self,
        colours: LatentRGB | None,
        every_seconds: float,
        deliver: Callable[[np.ndarray], None],
        *,
        max_frames: int = PREVIEW_FRAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.colours = colours
        self.every_seconds = every_seconds
        self.deliver = deliver
        self.max_frames = max_frames
        self.clock = clock
        self.taken = 0
        self._next = clock() + every_seconds

    def due(self) -> bool:
        return self.clock() >= self._next

    def take(self, latents: torch.Tensor) -> None:
        self._next = self.clock() + self.every_seconds
        self.taken += 1
        self.deliver(latents_to_rgb(latents, self.colours, self.max_frames))


def latents_to_rgb(latents: torch.Tensor, colours: LatentRGB | None, max_frames: int = PREVIEW_FRAMES) -> np.ndarray:
    """(C, F, H, W) latents → up to `max_frames` evenly spaced frames as (F, H, W, 3) uint8, coloured by `colours`
    (None: `fallback_factors`, stretched over the whole range)."""
    if latents.ndim != 4:
        raise ValueError(f"latents must be (C, F, H, W), got {tuple(latents.shape)}")
    channels, frames = latents.shape[:2]
    if colours is not None and colours.channels != channels:
        raise ValueError(f"colours fitted for {colours.channels} latent channels, got {channels}")
    picked = torch.from_numpy(np.linspace(0, frames - 1, min(frames, max_frames)).round().astype(np.int64))
    chosen = latents.detach()[:, picked.to(latents.device)].float()
    if colours is None:
        factors, bias = (torch.tensor(values, dtype=torch.float32) for values in fallback_factors(channels))
    else:
        factors, bias = colours.factors, colours.bias
    rgb = torch.einsum("cfhw,cr->fhwr", chosen, factors.to(latents.device)) + bias.to(latents.device)
    if colours is None:  # arbitrary factors: stretch what they show over the whole range
        low, high = rgb.amin(), rgb.amax()
        rgb = (rgb - low) / (high - low).clamp_min(1e-6) * 2 - 1
    return rgb.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def denoised_estimate(
    scheduler: object, step: int, previous: torch.Tensor | None, latents: torch.Tensor
) -> torch.Tensor:
    """The clean latents step `step` points at, from the latents before and after it (see the module's note); the
    latents as they are when that cannot be worked out (the first step, a scheduler without flow sigmas)."""
    sigmas = getattr(scheduler, "sigmas", None)
    if previous is None or sigmas is None or len(sigmas) <= step + 1 or previous.shape != latents.shape:
        return latents
    before, after = float(sigmas[step]), float(sigmas[step + 1])
    if abs(after - before) < 1e-6:
        return latents
    current = latents.float()
    velocity = (current - previous.float()) / (after - before)
    return current - after * velocity
