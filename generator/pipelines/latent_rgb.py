"""Latent-to-RGB maps for live previews: a linear map from a video model's latent channels to colour, fitted from
the model's own VAE when it loads, so a preview of the render in progress costs one small matrix product instead of
a VAE decode. Use: rgb = latents(C) · factors(C×3) + bias, in [-1, 1].

The fit: a set of small synthetic clips (solid colours: the RGB cube's corners and greys; gradients across, down
and along the diagonal; smooth colour blobs moving across the frames) is encoded by the VAE, the mean of its latent
distribution and no sample, and normalised exactly as the denoising loop's latents are (each backend's
`encode_as_loop_latents`). A latent pixel stands for a block of pixels and frames: ratio × ratio pixels (the VAE's
spatial compression), and `frame_multiple` frames, but the first latent frame stands for the first frame alone
(LTX's and Wan's VAEs are causal in time). Its target is the mean colour of that block, and a least-squares fit
with a bias maps the latent channels onto those targets. A light ridge (a small multiple of the channels' mean
variance added to the diagonal) keeps channels the clips barely move from getting large opposite weights.

A latent holds more than the mean colour of its block (edges, texture, its neighbours), and the denoiser's estimate
early in a render lies off the latents a VAE gives, so previews show rough colours and shapes, never the decoded
picture. A backend without fitted colours (no VAE to fit from, a failed fit) shows `fallback_factors`: where things
are and move, not their colours.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import VideoBackend

log = logging.getLogger(__name__)

CALIBRATION_SEED = 0  # the blobs' colours, sizes and paths: the same clips, so the same fit, on every load
CALIBRATION_SIDE = 64  # the clips' side in pixels at least (and at least 4 latent pixels across)
CLIPS_PER_ENCODE = 8  # clips the VAE encodes at once: bounds its activations' memory on a small GPU
RIDGE = 1e-3  # added to the normal equations' diagonal, times the channels' mean variance

Encoder = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, F, H, W) in [-1, 1] → (N, C, F', H', W') loop latents


@dataclass(frozen=True)
class LatentRGB:
    """A latent-to-RGB map fitted from a VAE: rgb = latents · factors + bias."""

    factors: torch.Tensor  # (C, 3) float32 on the CPU
    bias: torch.Tensor  # (3,) float32 on the CPU
    error: float  # root-mean-square error over the calibration clips' latent pixels, in [-1, 1] units

    @property
    def channels(self) -> int:
        return self.factors.shape[0]


def fallback_factors(channels: int) -> tuple[tuple[tuple[float, float, float], ...], tuple[float, float, float]]:
    """For a latent space without fitted colours: channel c feeds colour c mod 3, each colour the mean of its
    channels (scaled so unit-variance latents span about [-1, 1])."""
    counts = [len(range(colour, channels, 3)) for colour in range(3)]
    rows = []
    for channel in range(channels):
        row = [0.0, 0.0, 0.0]
        row[channel % 3] = 1.0 / math.sqrt(max(1, counts[channel % 3]))
        rows.append((row[0], row[1], row[2]))
    return tuple(rows), (0.0, 0.0, 0.0)


def fit_backend_latent_rgb(backend: VideoBackend) -> LatentRGB | None:
    """The backend's preview colours, fitted from its VAE (`backend.encode_as_loop_latents`); None, with a warning,
    when it has no VAE to fit from or the fit fails."""
    profile = backend.profile
    encode = getattr(backend, "encode_as_loop_latents", None)
    if encode is None:
        log.warning("%s has no VAE to fit preview colours from: previews will show its latent channels", profile.name)
        return None
    tick = time.perf_counter()
    try:
        colours = fit_latent_rgb(encode, size_multiple=profile.size_multiple, frame_multiple=profile.frame_multiple)
    except Exception:
        log.warning(
            "could not fit preview colours from the VAE of %s: previews will show its latent channels",
            profile.name,
            exc_info=True,
        )
        return None
    log.info(
        "preview colours of %s fitted from its VAE in %.2f s (%d channels, rms error %.3f)",
        profile.name,
        time.perf_counter() - tick,
        colours.channels,
        colours.error,
    )
    return colours


def fit_latent_rgb(encode: Encoder, *, size_multiple: int, frame_multiple: int) -> LatentRGB:
    """Fit a latent-to-RGB map from `encode` (clips → the loop's latents) on the calibration clips: square, of a side
    that is a multiple of `size_multiple`, and 2·`frame_multiple` + 1 frames (three latent frames)."""
    side = size_multiple * max(4, math.ceil(CALIBRATION_SIDE / size_multiple))
    clips = calibration_clips(2 * frame_multiple + 1, side, side)
    with torch.inference_mode():
        latents = torch.cat([encode(chunk).to("cpu", torch.float64) for chunk in clips.split(CLIPS_PER_ENCODE)])
    return solve_latent_rgb(latents, block_means(clips, tuple(latents.shape[2:])).double())


def solve_latent_rgb(latents: torch.Tensor, targets: torch.Tensor) -> LatentRGB:
    """The least-squares map (with bias, and the light ridge of the module's note) from (N, C, F, H, W) latents to
    (N, 3, F, H, W) colours of the same latent pixels."""
    if not torch.isfinite(latents).all():
        raise ValueError("the VAE gave latents that are not finite")
    x = latents.movedim(1, -1).reshape(-1, latents.shape[1]).double()
    y = targets.movedim(1, -1).reshape(-1, 3).double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    centred = x - x_mean
    gram = centred.T @ centred
    ridge = RIDGE * gram.diagonal().mean().clamp_min(1e-12)
    factors = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype), centred.T @ (y - y_mean))
    bias = y_mean - x_mean @ factors
    error = float((x @ factors + bias - y).square().mean().sqrt())
    return LatentRGB(factors.float(), bias.float(), error)


def block_means(clips: torch.Tensor, latent_shape: tuple[int, ...]) -> torch.Tensor:
    """The mean colour of the pixels and frames each latent pixel stands for (see the module's note):
    (N, 3, F, H, W) clips → (N, 3, F', H', W') for latents of shape (F', H', W')."""
    frames, height, width = clips.shape[2:]
    latent_frames, latent_height, latent_width = latent_shape
    frame_ratio = (frames - 1) // max(1, latent_frames - 1)
    if (
        frame_ratio * (latent_frames - 1) != frames - 1
        or height % latent_height
        or width % latent_width
        or height // latent_height != width // latent_width
    ):
        raise ValueError(f"latents {tuple(latent_shape)} do not tile clips of {(frames, height, width)}")
    # The first frame, repeated in front, fills the first latent frame's block with itself alone.
    padded = torch.cat([clips[:, :, :1].expand(-1, -1, frame_ratio - 1, -1, -1), clips], dim=2)
    ratio = height // latent_height
    return F.avg_pool3d(padded.float(), kernel_size=(frame_ratio, ratio, ratio))


def calibration_clips(frames: int, height: int, width: int, seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """The clips the map is fitted on, (N, 3, frames, height, width) float32 in [-1, 1]: the RGB cube's 8 corners and
    3 greys as solid colours, 6 two-colour gradients (across, down, diagonal), 6 clips of colour blobs moving over a
    background."""
    solids = [torch.tensor(corner) for corner in itertools.product((-1.0, 1.0), repeat=3)]
    solids += [torch.full((3,), grey) for grey in (-0.5, 0.0, 0.5)]
    clips = [colour.view(3, 1, 1, 1).expand(3, frames, height, width) for colour in solids]
    y = torch.linspace(0.0, 1.0, height).view(height, 1).expand(height, width)
    x = torch.linspace(0.0, 1.0, width).view(1, width).expand(height, width)
    ramps = {"across": x, "down": y, "diagonal": (x + y) / 2}
    gradients = [
        ("across", (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
        ("across", (-1.0, -1.0, 1.0), (1.0, 1.0, -1.0)),
        ("down", (-1.0, 1.0, -1.0), (1.0, -1.0, 1.0)),
        ("down", (1.0, -1.0, -1.0), (-1.0, -1.0, 1.0)),
        ("diagonal", (1.0, -1.0, -1.0), (-1.0, 1.0, 1.0)),
        ("diagonal", (-1.0, 1.0, -1.0), (0.5, 0.5, 0.5)),
    ]
    for direction, start, end in gradients:
        ramp = ramps[direction]
        picture = torch.tensor(start).view(3, 1, 1) * (1 - ramp) + torch.tensor(end).view(3, 1, 1) * ramp
        clips.append(picture[:, None].expand(3, frames, height, width))
    generator = torch.Generator().manual_seed(seed)
    clips += [moving_blobs(frames, height, width, generator) for _ in range(6)]
    return torch.stack(clips).contiguous()


def moving_blobs(frames: int, height: int, width: int, generator: torch.Generator, count: int = 3) -> torch.Tensor:
    """(3, frames, height, width) in [-1, 1]: `count` soft round blobs of random colours over a random background
    colour, each moving in a straight line from a random place to another over the frames."""

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        return torch.rand(shape, generator=generator) * (high - low) + low

    background = uniform(3)
    colours = uniform(count, 3)
    starts, ends = uniform(count, 2, low=0.1, high=0.9), uniform(count, 2, low=0.1, high=0.9)
    spreads = uniform(count, low=0.12, high=0.3)
    y = torch.linspace(0.0, 1.0, height).view(1, height, 1)
    x = torch.linspace(0.0, 1.0, width).view(1, 1, width)
    along = torch.linspace(0.0, 1.0, frames).view(frames, 1, 1)
    video = background.view(3, 1, 1, 1).expand(3, frames, height, width).clone()
    for colour, start, end, spread in zip(colours, starts, ends, spreads, strict=True):
        centre = start + (end - start) * along.view(frames, 1)  # (frames, 2): (y, x)
        distance = (y - centre[:, :1, None]) ** 2 + (x - centre[:, 1:, None]) ** 2
        weight = torch.exp(-distance / (2 * spread**2))[None]  # (1, frames, height, width)
        video = video * (1 - weight) + colour.view(3, 1, 1, 1) * weight
    return video
