"""Pictures and clips as members send them, carelessly or hostilely: 16-bit and transparent pictures, and phone
clips stored on their side with a display matrix, reach the render the way they look."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from generator.images import decode_fitted
from generator.inputs import load_clip
from generator.videos import _clip_references, _probe_mp4


def encoded(image: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def test_a_16_bit_grey_png_keeps_its_greys():
    """Before: `convert("L")` clipped 16-bit values, and a mid-grey scan or X-ray came out white."""
    pixels = np.zeros((64, 96), np.uint16)
    pixels[:, :48] = 16384  # a quarter grey on the left
    pixels[:, 48:] = 49152  # three quarters on the right
    fitted = decode_fitted(encoded(Image.fromarray(pixels)), 96, 64)
    assert abs(int(fitted[:, :40].mean()) - 64) <= 2 and abs(int(fitted[:, 56:].mean()) - 192) <= 2


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_transparent_cut_out_does_not_show_what_was_cut_away(fmt):
    """An RGBA picture keeps colours under its transparent pixels (here a green field cut away around a red
    subject): before, dropping the alpha brought the cut-away field back."""
    pixels = np.zeros((64, 96, 4), np.uint8)
    pixels[...] = (0, 255, 0, 0)  # transparent, but green underneath
    pixels[16:48, 32:64] = (255, 0, 0, 255)  # the subject
    fitted = decode_fitted(encoded(Image.fromarray(pixels, "RGBA"), fmt, lossless=True), 96, 64)
    assert fitted[:8].min() >= 250  # the transparent part is white, not green
    assert fitted[24:40, 40:56, 0].mean() > 240 and fitted[24:40, 40:56, 1:].mean() < 15  # the subject as it was


def test_a_palette_png_with_a_transparent_colour_is_laid_on_white():
    picture = Image.new("P", (96, 64), 0)
    picture.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    picture.paste(1, (32, 16, 64, 48))
    fitted = decode_fitted(encoded(picture, transparency=0), 96, 64)
    assert fitted[:8].min() >= 250 and fitted[24:40, 40:56, 0].mean() > 240


def phone_clip(rotation: int, frames: int = 6) -> bytes:
    """A 64×32 clip stored landscape, red in its top-left quarter, with a display matrix turning it
    `rotation` degrees counter-clockwise (a phone held upright stores -90)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        for _ in range(frames):
            pixels = np.zeros((32, 64, 3), np.uint8)
            pixels[:16, :32] = (255, 0, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def red_corner(frame: np.ndarray) -> str:
    """Which quarter of a frame is red."""
    height, width = frame.shape[:2]
    quarters = {
        "top-left": frame[: height // 2, : width // 2],
        "top-right": frame[: height // 2, width // 2 :],
        "bottom-left": frame[height // 2 :, : width // 2],
        "bottom-right": frame[height // 2 :, width // 2 :],
    }
    return max(quarters, key=lambda name: quarters[name][..., 0].mean())


def test_a_phone_clip_stored_on_its_side_is_read_upright():
    """Before: the display matrix was ignored; a portrait phone clip was taken as landscape and rendered sideways
    (an extension or edit of it, and a character made from it)."""
    data = phone_clip(-90)  # shown turned a quarter clockwise: the stored top-left becomes the top-right
    width, height, _, _ = _probe_mp4(data, 20)
    assert (width, height) == (32, 64)  # portrait, as the phone showed it
    frames = load_clip(data, 32, 64, 24)
    assert frames.shape == (6, 64, 32, 3) and red_corner(frames[0]) == "top-right"
    reference = np.asarray(Image.open(io.BytesIO(_clip_references(data, 20)[0])).convert("RGB"))
    assert reference.shape == (64, 32, 3) and red_corner(reference) == "top-right"


def test_a_clip_turned_half_way_is_read_upright():
    assert red_corner(load_clip(phone_clip(180), 64, 32, 24)[0]) == "bottom-right"
    assert red_corner(load_clip(phone_clip(0), 64, 32, 24)[0]) == "top-left"
