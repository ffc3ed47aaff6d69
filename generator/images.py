"""Reference images (image-to-video): checked before they are decoded, then fitted to the render size."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from generator.errors import invalid

ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # about 8K × 5K; more is refused before any pixel is decoded


def read_reference_image(data: bytes, param: str = "input_reference") -> Image.Image:
    """Decode an uploaded PNG, JPEG or WebP, refusing other types, oversized files and decompression bombs."""
    if not data:
        raise invalid(param, f"'{param}' is empty.")
    if len(data) > MAX_IMAGE_BYTES:
        raise invalid(param, f"'{param}' is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads only the header
            if image.format not in ACCEPTED_FORMATS:
                raise invalid(param, f"'{param}' must be a PNG, JPEG or WebP image, got {image.format or 'unknown'}.")
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise invalid(
                    param, f"'{param}' has {width}×{height} pixels; at most {MAX_IMAGE_PIXELS:,} are accepted."
                )
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise invalid(param, f"'{param}' decompresses to too many pixels.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise invalid(param, f"'{param}' is not a readable image ({type(error).__name__}).") from None
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB")


def fit_image(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio, resize, and return (height, width, 3) uint8."""
    fitted = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
    return np.asarray(fitted, dtype=np.uint8).copy()


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """The same fit for every frame of a clip: (F, H, W, 3) uint8 → (F, height, width, 3) uint8."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_image(Image.fromarray(frame), width, height) for frame in frames])


def to_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
