"""RGB → YUV 4:2:0 in torch (generator/yuv.py) against libswscale, and the encoder fed with planes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

from generator.media import reading, writing
from generator.yuv import conversion_device, rgb_to_yuv420, yuv420_planes
from tests.generator.test_encode import psnr, textured_video


def swscale_planes(frames: np.ndarray) -> np.ndarray:
    """What the encoder fed x264 before: PyAV's reformat (libswscale), frame by frame, as (F, H·3/2, W)."""
    return np.stack(
        [
            av.VideoFrame.from_ndarray(frame, format="rgb24")
            .reformat(interpolation="AREA", format="yuv420p")
            .to_ndarray()
            for frame in frames
        ]
    )


def test_planes_match_libswscale_luma_exactly_and_chroma_within_one_level() -> None:
    rng = np.random.default_rng(7)
    frames = np.concatenate(
        [
            textured_video(frames=3, height=64, width=96),
            rng.integers(0, 256, (3, 64, 96, 3), dtype=np.uint8),  # every colour, full range
            np.zeros((1, 64, 96, 3), np.uint8),
            np.full((1, 64, 96, 3), 255, np.uint8),
        ]
    )
    expected, got = swscale_planes(frames).astype(np.int16), yuv420_planes(frames).astype(np.int16)

    assert got.shape == expected.shape == (len(frames), 96, 96)
    assert np.array_equal(got[:, :64], expected[:, :64]), "Y is libswscale's, bit for bit"
    chroma = np.abs(got[:, 64:] - expected[:, 64:])
    assert chroma.max() <= 1 and (chroma > 0).mean() < 0.1, "U and V: about 5 % one level off, none more"


@pytest.mark.parametrize("size", [(2, 2), (64, 96), (128, 34)])
def test_any_even_size_converts_and_odd_sizes_are_refused(size) -> None:
    height, width = size
    frames = np.random.default_rng(0).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    expected, got = swscale_planes(frames), yuv420_planes(frames)
    assert np.array_equal(got[:, :height], expected[:, :height])
    with pytest.raises(ValueError, match="even sides"):
        rgb_to_yuv420(torch.zeros((1, height + 1, width, 3), dtype=torch.uint8))


def test_a_long_part_converts_in_chunks_like_frame_by_frame() -> None:
    frames = textured_video(frames=37, height=32, width=48)  # more than one chunk of 16
    whole = yuv420_planes(frames)
    one_by_one = np.concatenate([yuv420_planes(frames[index : index + 1]) for index in range(len(frames))])
    assert np.array_equal(whole, one_by_one)


def test_a_writer_fed_planes_writes_the_video_libswscale_would(tmp_path: Path) -> None:
    frames = textured_video(frames=24)
    results = {}
    for name, convert_on in (("swscale", None), ("planes", "cpu")):
        writer = writing.Mp4Writer(tmp_path / f"{name}.mp4", 24, convert_on=convert_on)
        writer.write(frames[:10])
        writer.write(frames[10:])
        results[name] = writer.finish(10 * 1024 * 1024)
    decoded = {name: reading.decode_video(result.path)[0] for name, result in results.items()}

    assert results["planes"].frames == 24 and decoded["planes"].shape == frames.shape
    # x264 is lossy: a chroma sample one level off changes its decisions, so compare what each keeps of the source.
    assert psnr(decoded["planes"], frames) == pytest.approx(psnr(decoded["swscale"], frames), abs=0.2)
    assert results["planes"].size_bytes == pytest.approx(results["swscale"].size_bytes, rel=0.05)


def test_encode_mp4_feeds_planes_to_every_full_size_attempt_and_pads_odd_sides(tmp_path: Path, monkeypatch) -> None:
    def no_libswscale(*args, **kwargs):
        raise AssertionError("full-size attempts get planes; libswscale only scales smaller pictures")

    monkeypatch.setattr(writing, "encode_frames", no_libswscale)
    frames = textured_video(frames=24, height=63, width=95)
    capped = writing.encode_mp4(frames, 24, tmp_path / "capped.mp4", max_bytes=18_000, convert_on="cpu")
    assert (capped.width, capped.height) == (96, 64), "at full size: fed planes"
    assert capped.bitrate is not None and capped.size_bytes <= 18_000 and capped.padded
    decoded, _ = reading.decode_video(capped.path)
    assert decoded.shape[0] == 24 and psnr(decoded[:, :63, :95], frames) > 15


def test_the_conversion_runs_on_the_renderer_s_gpu_only() -> None:
    assert conversion_device(SimpleNamespace(device=torch.device("cpu"))) is None
    assert conversion_device(SimpleNamespace(device=torch.device("cuda", 1))) == torch.device("cuda", 1)
    wan_like = SimpleNamespace(pipeline=SimpleNamespace(_execution_device=torch.device("cuda", 0)))
    assert conversion_device(wan_like) == torch.device("cuda", 0)
    assert conversion_device(object()) is None


def test_a_failing_device_conversion_falls_back_to_libswscale(tmp_path: Path, monkeypatch) -> None:
    def out_of_memory(frames, device=None):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr("generator.yuv.yuv420_planes", out_of_memory)
    frames = textured_video(frames=6)
    writer = writing.Mp4Writer(tmp_path / "v.mp4", 24, convert_on="cuda")
    writer.write(frames)
    assert writer.finish(10 * 1024 * 1024).frames == 6
