"""RGB → YUV 4:2:0 (what x264 is fed) in torch, on whatever device the frames are.

libswscale converts each frame on the encoding thread, one after the other (0.1 s for 121 frames of 768×512 on
this machine's CPU, serial before x264's parallel frame threads). Here the whole part is converted at once, on the
GPU where there is one, and only the planes (half the bytes of RGB) go to the encoder.

The arithmetic is libswscale's own for `rgb24` → `yuv420p` (BT.601, limited range, the conversion PyAV's
`reformat` does with no colour space given): 15-bit fixed-point coefficients, luma rounded the same way, so the
Y plane is bit-identical; chroma averages each 2×2 block of the same fixed-point values. libswscale's vertical
chroma filter rounds slightly differently: about 5 % of U and V samples are one level off, never more
(`tests/generator/test_yuv.py` checks both bounds against PyAV on the installed FFmpeg).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

_SHIFT = 15  # libswscale's RGB2YUV_SHIFT
_ONE = 1 << _SHIFT


def _fixed(value: float) -> int:
    return round(value * _ONE)


# BT.601 rows, scaled to limited range (219 levels of luma, 224 of chroma, of 255).
_Y = tuple(_fixed(c * 219 / 255) for c in (0.299, 0.587, 0.114))
_U = tuple(_fixed(c * 224 / 255) for c in (-0.168736, -0.331264, 0.5))
_V = tuple(_fixed(c * 224 / 255) for c in (0.5, -0.418688, -0.081312))
_CHUNK = 16  # frames converted at once: bounds the int32 working memory (≈ 75 MB at 768×512)
_UPLOAD = 128  # frames on the device at once (a 121-frame clip in one go; ≈ 150 MB of RGB at 768×512)


def rgb_to_yuv420(frames: torch.Tensor) -> torch.Tensor:
    """(F, H, W, 3) uint8 RGB, H and W even, on any device → (F, H·3/2, W) uint8 on the same device: each frame's
    Y plane (H × W), then U and V (H/2 × W/2 each), one after the other: the I420 layout PyAV's
    `VideoFrame.from_ndarray(…, format="yuv420p")` takes."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
    count, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs even sides, got {width}x{height}")
    out = torch.empty((count, height * 3 // 2, width), dtype=torch.uint8, device=frames.device)
    luma, quarter = height * width, height * width // 4
    flat = out.view(count, -1)
    for start in range(0, count, _CHUNK):
        rgb = frames[start : start + _CHUNK].to(torch.int32)
        red, green, blue = rgb.unbind(-1)
        # Luma as libswscale's rgb24ToY: 8.6 fixed point, then rounded to 8 bits.
        y14 = (_Y[0] * red + _Y[1] * green + _Y[2] * blue + (32 << (_SHIFT - 1)) + (1 << (_SHIFT - 7))) >> (_SHIFT - 6)
        part = flat[start : start + _CHUNK]
        part[:, :luma] = ((y14 + 32) >> 6).clamp_(0, 255).view(len(rgb), -1)
        # Chroma as rgb24ToUV_half (pairs of columns summed), then pairs of rows averaged with rounding.
        pairs = [channel[..., 0::2] + channel[..., 1::2] for channel in (red, green, blue)]
        for index, (cr, cg, cb) in enumerate((_U, _V)):
            c14 = (cr * pairs[0] + cg * pairs[1] + cb * pairs[2] + (256 << _SHIFT) + (1 << (_SHIFT - 6))) >> (
                _SHIFT - 5
            )
            plane = ((c14[:, 0::2] + c14[:, 1::2] + 64) >> 7).clamp_(0, 255)
            offset = luma + index * quarter
            part[:, offset : offset + quarter] = plane.reshape(len(rgb), -1)
    return out


def yuv420_planes(frames: np.ndarray, device: torch.device | str | None = None) -> np.ndarray:
    """`rgb_to_yuv420` for host frames, run on `device` (the CPU when None): (F, H, W, 3) uint8 numpy → (F, H·3/2,
    W) uint8 numpy. From a GPU the frames go up as uint8 and the planes come back, half their bytes."""
    device = torch.device("cpu") if device is None else torch.device(device)
    tensor = host_tensor(frames)
    if device.type == "cpu":
        return rgb_to_yuv420(tensor).numpy()
    count, height, width, _ = tensor.shape
    host = torch.empty((count, height * 3 // 2, width), dtype=torch.uint8, pin_memory=True)
    # On a stream of its own: the encoding thread converts one segment while the render thread's kernels for the
    # next are queued on the default stream, and neither waits for the other. A part at a time, so a long video
    # (an over-cap encode of a minute) never needs all its frames on the GPU beside a render.
    with torch.cuda.stream(torch.cuda.Stream(device)):
        for start in range(0, count, _UPLOAD):
            planes = rgb_to_yuv420(tensor[start : start + _UPLOAD].to(device))
            host[start : start + _UPLOAD].copy_(planes)  # synchronous on this stream
    return host.numpy()


def conversion_device(backend: object) -> torch.device | None:
    """Where work on `backend`'s rendered frames runs (the encoder's YUV conversion, the stitch's colour lookups):
    the backend's GPU, or None on a CPU, where libswscale and numpy are quicker than torch."""
    device = getattr(backend, "device", None)
    if device is None:  # WanBackend: its pipeline's
        device = getattr(getattr(backend, "pipeline", None), "_execution_device", None)
    return device if isinstance(device, torch.device) and device.type == "cuda" else None


def host_tensor(frames: np.ndarray) -> torch.Tensor:
    """A CPU tensor over `frames`' memory (a copy only when not contiguous), to be read: the render hands on
    read-only views, over which torch would warn that it cannot stop writes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(frames))
