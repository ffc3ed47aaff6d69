"""Reference images are decoded straight to the render size: right picture, right way up, little memory."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generator.errors import APIError
from generator.images import decode_fitted, read_image_header


def encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def halves(width: int, height: int) -> Image.Image:
    """Red on the left, blue on the right."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_large_image_is_decoded_to_the_render_size_with_its_picture(fmt):
    data = encoded(halves(4000, 2600), fmt)
    fitted = decode_fitted(data, 96, 64)
    assert fitted.shape == (64, 96, 3) and fitted.dtype == np.uint8
    assert fitted[:, :40, 0].mean() > 200 and fitted[:, :40, 2].mean() < 50  # left still red
    assert fitted[:, 56:, 2].mean() > 200 and fitted[:, 56:, 0].mean() < 50  # right still blue


def test_an_exif_quarter_turn_is_shown_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: shown turned a quarter clockwise
    data = encoded(halves(300, 200), "JPEG", exif=exif.tobytes())
    assert read_image_header(data).width == 200 and read_image_header(data).height == 300
    fitted = decode_fitted(data, 64, 96)
    # Turned clockwise, the stored left (red) half becomes the top.
    assert fitted[:40, :, 0].mean() > 200 and fitted[56:, :, 2].mean() > 200


def test_a_one_bit_image_is_never_widened_to_full_size_rgb(monkeypatch):
    """A 4.9 KB 1-bit PNG of 6300×6300 is 119 MB as RGB: only the reduced picture becomes RGB."""
    widened = []
    convert = Image.Image.convert

    def watched(self, mode=None, *args, **kwargs):
        if mode == "RGB":
            widened.append(self.size)
        return convert(self, mode, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", watched)
    data = encoded(Image.new("1", (6300, 6300), 1), "PNG", optimize=True)
    assert len(data) < 20_000
    fitted = decode_fitted(data, 96, 64)
    assert fitted.shape == (64, 96, 3) and fitted.min() == 255
    assert widened and max(width * height for width, height in widened) <= 4 * 2 * 96 * 2 * 96


def test_a_broken_image_is_a_400_naming_the_parameter():
    data = encoded(halves(64, 64), "PNG")[:60]
    with pytest.raises(APIError) as raised:
        decode_fitted(data, 32, 32)
    assert raised.value.status == 400 and raised.value.param == "input_reference"
