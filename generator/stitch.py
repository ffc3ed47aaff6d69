"""Joining segments: colour matching a continuation to what came before, and measuring how visible a seam is."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# A colour transform computed from a few frames can be extreme (a nearly flat context has a tiny std); bound it.
_MIN_SCALE, _MAX_SCALE = 0.5, 2.0
_EPS = 1e-3


@dataclass(frozen=True)
class ColourStats:
    """Per-channel mean and standard deviation of some frames, in 0..255 units."""

    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)


@dataclass(frozen=True)
class SeamReport:
    """How a joint compares with the motion inside the two parts it joins (all in 0..255 units)."""

    seam_difference: float  # mean |after[0] - before[-1]|
    inner_difference: float  # mean |frame[i+1] - frame[i]| inside before and after, pooled
    colour_jump: float  # largest per-channel change of mean colour across the joint
    inner_colour_change: float  # largest per-channel change of mean colour between neighbours inside the parts

    @property
    def ratio(self) -> float:
        """Seam difference over the typical frame-to-frame difference: about 1 means an invisible joint."""
        return self.seam_difference / max(self.inner_difference, _EPS)


def colour_stats(frames: np.ndarray) -> ColourStats:
    """Per-channel statistics of (F, H, W, 3) uint8 frames, from each channel's histogram (exact, and far quicker
    than converting every pixel to float: 17 frames of 768×512 in milliseconds instead of most of a second)."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(frames.shape[-1]):
        counts = np.bincount(frames[..., channel].ravel(), minlength=256).astype(np.float64)
        total = max(counts.sum(), 1.0)
        mean = (counts * values).sum() / total
        means.append(mean)
        stds.append(np.sqrt((counts * (values - mean) ** 2).sum() / total))
    return ColourStats(mean=np.array(means, np.float32), std=np.array(stds, np.float32))


def match_colours(
    frames: np.ndarray, source: ColourStats, target: ColourStats, device: object | None = None
) -> np.ndarray:
    """AdaIN-style colour match of new frames, full strength at the first frame, fading to none at the last.

    `source` describes the model's own rendering of the conditioning frames and `target` the real frames it was
    conditioned on; the difference is the colour drift the model introduced. Correcting fully at the seam removes
    the jump; fading out afterwards lets the segment settle back to the model's colours gradually rather than
    stacking one transform on another over a long chain. Per-frame lookup tables keep it cheap on large frames.
    `device`: a torch device to apply the tables on (the render's GPU: the frames go up as uint8 and come back, a
    few milliseconds where the lookups on the host took 0.3-0.4 s for 104 frames of 768×512); the same bytes.
    """
    count = frames.shape[0]
    if count == 0:
        return frames.copy()
    scale = np.clip(target.std / np.maximum(source.std, _EPS), _MIN_SCALE, _MAX_SCALE)
    shift = target.mean - source.mean * scale
    values = np.arange(256, dtype=np.float32)
    corrected_lut = values[None, :] * scale[:, None] + shift[:, None]  # (3, 256)
    weights = np.linspace(1.0, 0.0, count, dtype=np.float32) if count > 1 else np.ones(1, np.float32)
    luts = [
        np.clip(np.rint(values[None, :] + weight * (corrected_lut - values[None, :])), 0, 255).astype(np.uint8)
        for weight in weights
    ]  # (3, 256) per frame
    if device is not None:
        try:
            return _apply_luts_on(device, frames, np.stack(luts))
        except RuntimeError:  # e.g. out of GPU memory: the same bytes from numpy's lookups
            log.warning("colour lookups on %s failed; doing them on the host", device, exc_info=True)
    out = np.empty_like(frames)
    for index, lut in enumerate(luts):
        for channel in range(frames.shape[-1]):  # a uint8 lookup per channel: no wide index arrays
            np.take(lut[channel], frames[index, ..., channel], out=out[index, ..., channel])
    return out


_LUT_CHUNK = 16  # frames looked up at once on a device: bounds the int64 index (≈ 150 MB at 768×512)


def _apply_luts_on(device: object, frames: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """`out[f, y, x, c] = luts[f, c, frames[f, y, x, c]]` in torch on `device`."""
    import torch

    from .yuv import host_tensor

    device = torch.device(device)
    table = torch.from_numpy(luts).to(device).view(-1)  # (F · 3 · 256,)
    out = np.empty_like(frames)
    for start in range(0, len(frames), _LUT_CHUNK):
        part = host_tensor(frames[start : start + _LUT_CHUNK]).to(device)
        count, channels = part.shape[0], part.shape[-1]
        offsets = torch.arange(start, start + count, device=device)[:, None] * channels
        offsets = (offsets + torch.arange(channels, device=device)[None, :]) * 256  # (count, channels)
        looked_up = table[part.long() + offsets[:, None, None, :]]
        out[start : start + count] = looked_up.cpu().numpy()
    return out


def seam_report(before: np.ndarray, after: np.ndarray) -> SeamReport:
    """Compare the joint between two (F, H, W, 3) uint8 clips with the frame-to-frame change inside each."""
    if before.shape[1:] != after.shape[1:]:
        raise ValueError(f"frame sizes differ: {before.shape[1:]} and {after.shape[1:]}")
    if len(before) < 2 or len(after) < 2:
        raise ValueError("each part needs at least two frames to measure its inner motion")
    seam = _mean_abs(after[0], before[-1])
    inner = [_mean_abs(part[i + 1], part[i]) for part in (before, after) for i in range(len(part) - 1)]
    means = [part.reshape(len(part), -1, part.shape[-1]).mean(axis=1) for part in (before, after)]
    colour_jump = float(np.abs(means[1][0] - means[0][-1]).max())
    inner_colour = [float(np.abs(np.diff(m, axis=0)).max(axis=1).mean()) for m in means]
    return SeamReport(
        seam_difference=seam,
        inner_difference=float(np.mean(inner)),
        colour_jump=colour_jump,
        inner_colour_change=float(np.mean(inner_colour)),
    )


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
