"""Reference images (image-to-video): checked before they are decoded, then fitted to the render size."""

from __future__ import annotations

import ctypes
import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps

from generator.errors import invalid

ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # about 8K × 5K; more is refused before any pixel is decoded
# EXIF orientations and the turn that shows the picture upright (as ImageOps.exif_transpose does).
EXIF_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
QUARTER_TURNS = (5, 6, 7, 8)  # width and height swap
TRANSPARENT_SHOWN_AS = (255, 255, 255, 255)  # what shows through a transparent picture: white, as on a page


@dataclass(frozen=True)
class ImageHeader:
    """An uploaded image's facts read from its header: its size as shown (after its EXIF orientation)."""

    width: int
    height: int


def read_image_header(data: bytes, param: str = "input_reference") -> ImageHeader:
    """Check an uploaded PNG, JPEG or WebP without decoding its pixels: type, bytes, pixel count."""
    with _opened(data, param) as image:
        width, height = image.size
        if _orientation(image) in QUARTER_TURNS:
            width, height = height, width
        return ImageHeader(width, height)


def decode_fitted(data: bytes, width: int, height: int, param: str = "input_reference") -> np.ndarray:
    """Decode an uploaded image straight to what the model needs: (height, width, 3) uint8, centre-cropped.

    JPEG is decoded already scaled down (`draft`: 1/2 to 1/8 in the decoder); other formats are reduced by a
    whole factor right after decoding, in their own mode (a 1-bit image is not widened to RGB at full size first).
    Nothing larger than the decoded file and one reduced copy is held, and only inside this call."""
    with _opened(data, param) as image:
        orientation = _orientation(image)
        source = image.size
        # What the decoded image must cover for a crop-and-resize to (width, height), in the file's own orientation.
        need_w, need_h = (height, width) if orientation in QUARTER_TURNS else (width, height)
        scale = max(need_w / source[0], need_h / source[1])
        needed = (max(1, math.ceil(source[0] * scale)), max(1, math.ceil(source[1] * scale)))
        try:
            if image.format == "JPEG":
                image.draft("RGB", needed)
            image.load()
        except Image.DecompressionBombError:
            raise invalid(param, f"'{param}' decompresses to too many pixels.") from None
        except (OSError, SyntaxError, ValueError) as error:
            raise invalid(param, f"'{param}' is not a readable image ({type(error).__name__}).") from None
        picture: Image.Image = image
        if picture.mode == "I" or picture.mode.startswith("I;16"):
            # 16 bits of grey (a 16-bit PNG): their top 8 (`convert("L")` clips, and mid grey came out white).
            picture = Image.fromarray(np.clip(np.asarray(picture) >> 8, 0, 255).astype(np.uint8))
        if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info:
            picture = picture.convert("RGBA")  # laid on white once reduced, below
        elif picture.mode not in ("L", "RGB"):
            picture = picture.convert("L" if picture.mode in ("1", "F") else "RGB")
        # Reduce by a whole factor while at least twice the needed size remains; LANCZOS does the rest.
        factor = int(min(picture.width / (needed[0] * 2), picture.height / (needed[1] * 2)))
        if factor > 1:
            picture = picture.reduce(factor)
        if orientation in EXIF_TURNS:
            picture = picture.transpose(EXIF_TURNS[orientation])
        if picture.mode == "RGBA":
            # Transparent pixels show the background, not the colours a cut-out left under them.
            picture = Image.alpha_composite(Image.new("RGBA", picture.size, TRANSPARENT_SHOWN_AS), picture)
        return fit_image(picture.convert("RGB"), width, height)


@contextmanager
def _opened(data: bytes, param: str) -> Iterator[Image.Image]:
    """The image with only its header read, refusing other types, oversized files and decompression bombs."""
    if not data:
        raise invalid(param, f"'{param}' is empty.")
    if len(data) > MAX_IMAGE_BYTES:
        raise invalid(param, f"'{param}' is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads only the header
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise invalid(param, f"'{param}' decompresses to too many pixels.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise invalid(param, f"'{param}' is not a readable image ({type(error).__name__}).") from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            raise invalid(param, f"'{param}' must be a PNG, JPEG or WebP image, got {image.format or 'unknown'}.")
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise invalid(param, f"'{param}' has {width}×{height} pixels; at most {MAX_IMAGE_PIXELS:,} are accepted.")
        yield image


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: as stored)."""
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a broken EXIF block: shown as stored, as exif_transpose would
        return 1


def fit_image(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio, resize, and return (height, width, 3) uint8."""
    fitted = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
    return np.asarray(fitted, dtype=np.uint8).copy()


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """The same fit for every frame of a clip: (F, H, W, 3) uint8 → (F, height, width, 3) uint8."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_image(Image.fromarray(frame), width, height) for frame in frames])


def to_png(pixels: np.ndarray) -> bytes:
    """(H, W, 3) uint8 as a PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def reference_png(data: bytes, width: int, height: int, param: str = "input_reference") -> bytes:
    """An uploaded image as the job keeps it: decoded to the render size, as a PNG."""
    return to_png(decode_fitted(data, width, height, param))


def release_freed_memory() -> None:
    """Ask the C allocator to return freed memory to the system (glibc keeps it per thread otherwise: after large
    decodes a process stayed gigabytes larger while idle). Does nothing where there is no glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()
