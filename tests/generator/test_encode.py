"""generator.media: MP4 encoding under a byte cap, reading and seeking, joins, thumbnails, spritesheets and lossless
tails."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from generator.media import EncodeError, reading
from generator.media.joining import append_part, append_squeezed, append_to_mp4, encode_extension
from generator.media.previews import spritesheet_indices, write_spritesheet, write_thumbnail
from generator.media.reading import decode_video, frame_count, frames_at
from generator.media.tails import load_tail, save_tail
from generator.media.writing import CRF, Mp4Writer, encode_mp4


def textured_video(frames: int = 24, height: int = 128, width: int = 192, seed: int = 0) -> np.ndarray:
    """Moving gradients plus noise: compressible, but not to nothing."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), np.uint8)
    for index in range(frames):
        video[index, ..., 0] = (columns * 2 + index * 5) % 256
        video[index, ..., 1] = (rows * 2 + index * 3) % 256
        video[index, ..., 2] = rng.integers(0, 256, (height, width))
    return video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order."""
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size == 0:
            break
        offset += size
    return boxes


def test_mp4_is_h264_yuv420p_faststart_at_the_real_fps(tmp_path: Path) -> None:
    frames = textured_video(frames=17)
    encoded = encode_mp4(frames, 8, tmp_path / "clip.mp4", max_bytes=10 * 1024 * 1024)
    assert encoded.crf == 23 and encoded.bitrate is None and encoded.attempts == 1
    assert encoded.size_bytes == (tmp_path / "clip.mp4").stat().st_size
    with av.open(str(encoded.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 8
        assert (stream.width, stream.height) == (192, 128)
    boxes = top_level_boxes(encoded.path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    decoded, fps = decode_video(encoded.path)
    assert decoded.shape == frames.shape and fps == 8.0
    assert encoded.duration == pytest.approx(17 / 8)


def test_x264_runs_frame_threads_with_the_default_preset(tmp_path: Path) -> None:
    """PyAV asks libx264 for slice threads unless told otherwise; x264 records its settings in the stream."""
    encoded = encode_mp4(textured_video(frames=9), 24, tmp_path / "clip.mp4", max_bytes=10 * 1024 * 1024)
    settings = encoded.path.read_bytes()
    assert b"sliced_threads=0" in settings
    assert b"subme=2" in settings, "veryfast's sub-pixel refinement: the default preset reached x264"


def test_odd_sizes_are_padded_by_one_pixel_not_rescaled(tmp_path: Path) -> None:
    frames = textured_video(frames=5, height=63, width=95)
    encoded = encode_mp4(frames, 24, tmp_path / "odd.mp4", max_bytes=10 * 1024 * 1024)
    assert encoded.padded and (encoded.width, encoded.height) == (96, 64)
    decoded, _ = decode_video(encoded.path)
    assert decoded.shape == (5, 64, 96, 3)
    # The picture is where it was: only the added edge row and column are new.
    assert np.abs(decoded[:, :63, :95, :2].astype(int) - frames[..., :2]).mean() < 8


def test_over_the_cap_it_reencodes_smaller_until_it_fits(tmp_path: Path) -> None:
    frames = textured_video(frames=24)
    full = encode_mp4(frames, 24, tmp_path / "full.mp4", max_bytes=10 * 1024 * 1024)
    cap = full.size_bytes // 3
    capped = encode_mp4(frames, 24, tmp_path / "capped.mp4", max_bytes=cap)
    assert capped.size_bytes <= cap == cap and (tmp_path / "capped.mp4").stat().st_size <= cap
    assert capped.bitrate is not None and capped.attempts > 1
    decoded, fps = decode_video(capped.path)
    assert len(decoded) == 24 and fps == 24.0


def test_an_impossible_cap_is_a_clear_error_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="cannot fit 24 frames"):
        encode_mp4(textured_video(frames=24), 24, tmp_path / "tiny.mp4", max_bytes=1500)
    assert list(tmp_path.iterdir()) == []


def test_thumbnail_is_webp(tmp_path: Path) -> None:
    path = write_thumbnail(textured_video(frames=1)[0], tmp_path / "thumb.webp")
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.size == (192, 128)


def test_spritesheet_is_a_jpeg_grid_of_evenly_spaced_frames(tmp_path: Path) -> None:
    sheet = write_spritesheet(textured_video(frames=40), tmp_path / "sprites.jpg", count=8, columns=4, tile_width=96)
    assert sheet.frame_indices == (0, 6, 11, 17, 22, 28, 33, 39)
    assert (sheet.columns, sheet.rows, sheet.tile_width, sheet.tile_height) == (4, 2, 96, 64)
    with Image.open(sheet.path) as image:
        assert image.format == "JPEG" and image.size == (4 * 96, 2 * 64)


@pytest.mark.parametrize(
    "shape",
    [(9, 64, 96), (1, 33, 65), (3, 1, 7), (2, 2, 1), (1, 4, 4), (2, 3, 5)],
    ids=["several frames", "odd sides", "one pixel high", "one pixel wide", "four pixels", "three pixels high"],
)
def test_tail_frames_round_trip_exactly(tmp_path: Path, shape) -> None:
    rng = np.random.default_rng(3)
    tail = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)  # every value, no smoothness for a codec to lean on
    tail[0, 0, 0], tail[-1, -1, -1] = 0, 255
    path = save_tail(tail, tmp_path / "tail.mkv", fps=24)
    assert path == tmp_path / "tail.mkv" and [p.name for p in tmp_path.iterdir()] == ["tail.mkv"]
    restored = load_tail(path)
    assert restored.dtype == np.uint8 and np.array_equal(restored, tail)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "ffv1"


def test_tail_is_much_smaller_than_the_raw_frames_of_a_smooth_clip(tmp_path: Path) -> None:
    tail = textured_video(frames=9, height=64, width=96)
    tail[..., 2] = tail[..., 0]  # no noise channel
    path = save_tail(tail, tmp_path / "tail.mkv", fps=24)
    assert path.stat().st_size < tail.nbytes / 4


def test_tails_kept_as_compressed_numpy_by_earlier_versions_still_load(tmp_path: Path) -> None:
    tail = textured_video(frames=5, height=32, width=48)
    path = tmp_path / "tail.npz"
    with path.open("wb") as handle:  # exactly how earlier versions wrote it
        np.savez_compressed(handle, frames=tail)
    assert np.array_equal(load_tail(path), tail)


def test_a_tail_needs_a_frame_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps"):
        save_tail(textured_video(frames=2, height=32, width=32), tmp_path / "tail.mkv", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_frames_must_be_uint8_rgb(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((4, 32, 32, 3), np.float32), 8, tmp_path / "x.mp4", max_bytes=10**6)


def test_encoding_the_same_frames_twice_gives_the_same_pictures(tmp_path):
    """Frames carry explicit timestamps; without them the encoder guessed and re-encodes differed."""
    frames = (np.random.default_rng(3).random((16, 64, 96, 3)) * 255).astype(np.uint8)
    first = encode_mp4(frames, 8, tmp_path / "a.mp4", 10**7)
    second = encode_mp4(frames, 8, tmp_path / "b.mp4", 10**7)
    decoded_a, _ = decode_video(first.path)
    decoded_b, _ = decode_video(second.path)
    assert len(decoded_a) == 16
    assert np.array_equal(decoded_a, decoded_b)


@pytest.mark.parametrize("held_as", ["file", "bytes"])
def test_an_extension_continues_the_parents_stream_without_reencoding_it(tmp_path: Path, held_as: str) -> None:
    video = textured_video(frames=40)
    parent = encode_mp4(video[:24], 8, tmp_path / "parent.mp4", max_bytes=10 * 1024 * 1024)
    source = parent.path if held_as == "file" else parent.path.read_bytes()
    joined = append_to_mp4(source, video[24:], 8, tmp_path / "joined.mp4", max_bytes=10 * 1024 * 1024)
    assert joined is not None
    assert (joined.frames, joined.width, joined.height, joined.fps) == (40, 192, 128, 8)
    assert joined.size_bytes == (tmp_path / "joined.mp4").stat().st_size
    assert joined.duration == pytest.approx(5.0)
    decoded, fps = decode_video(joined.path)
    parent_decoded, _ = decode_video(parent.path)
    assert fps == 8.0 and len(decoded) == 40
    assert np.array_equal(decoded[:24], parent_decoded), "the parent's pictures are its own, bit for bit"
    # The new frames follow, in order (the gradients; the third channel is noise no encoder keeps).
    assert np.abs(decoded[24:, ..., :2].astype(int) - video[24:, ..., :2]).mean() < 8
    boxes = top_level_boxes(joined.path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.mp4", "parent.mp4"]  # no part file left


def test_a_chain_of_extensions_keeps_the_first_clip_as_it_was_encoded_once(tmp_path: Path) -> None:
    video = textured_video(frames=8 * 6)
    current = encode_mp4(video[:8], 8, tmp_path / "0.mp4", max_bytes=10 * 1024 * 1024).path
    for step in range(1, 6):
        joined = append_to_mp4(current, video[8 * step : 8 * (step + 1)], 8, tmp_path / f"{step}.mp4", 10 * 1024 * 1024)
        assert joined is not None
        current = joined.path
    first, _ = decode_video(tmp_path / "0.mp4")
    last, _ = decode_video(current)
    assert len(last) == 48 and np.array_equal(last[:8], first)


def test_a_parent_the_new_part_cannot_follow_is_left_to_a_whole_encode(tmp_path: Path) -> None:
    video = textured_video(frames=16)
    roomy = 10 * 1024 * 1024
    parent = encode_mp4(video[:8], 8, tmp_path / "parent.mp4", max_bytes=roomy)
    out = tmp_path / "joined.mp4"
    # Another picture size (a parent squeezed under a byte cap is smaller), frame rate, or x264 preset.
    assert append_to_mp4(parent.path, textured_video(frames=8, height=64, width=96), 8, out, roomy) is None
    assert append_to_mp4(parent.path, video[8:], 12, out, roomy) is None
    assert append_to_mp4(parent.path, video[8:], 8, out, roomy, preset="medium") is None
    # Room for the parent but not for both parts.
    assert append_to_mp4(parent.path, video[8:], 8, out, parent.size_bytes + 100) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent.mp4"]


def test_a_parent_squeezed_under_a_byte_cap_is_continued_as_it_is(tmp_path: Path) -> None:
    """A video encoded at a capped bitrate (here also at a lower H.264 level, which x264 picks from the bitrate)
    has the parameter sets of a CRF encode of its size, and a new part is encoded at its level."""
    video = textured_video(frames=16)
    full = encode_mp4(video[:8], 8, tmp_path / "full.mp4", max_bytes=10 * 1024 * 1024)
    capped = encode_mp4(video[:8], 8, tmp_path / "capped.mp4", max_bytes=full.size_bytes // 2)
    assert capped.bitrate is not None and (capped.width, capped.height) == (192, 128)
    joined = append_to_mp4(capped.path, video[8:], 8, tmp_path / "joined.mp4", 10 * 1024 * 1024)
    assert joined is not None and joined.crf == CRF
    decoded, _ = decode_video(joined.path)
    assert len(decoded) == 16 and np.array_equal(decoded[:8], decode_video(capped.path)[0])
    # The same for a part encoded along its render.
    writer = Mp4Writer(tmp_path / "part.mp4", 8, follows=capped.path.read_bytes())
    writer.write(video[8:])
    assert writer.finish(max_bytes=10 * 1024 * 1024) is not None
    along = append_part(capped.path, tmp_path / "part.mp4", 8, tmp_path / "along.mp4", 10 * 1024 * 1024)
    assert along is not None and np.array_equal(decode_video(along.path)[0][:8], decoded[:8])


def test_an_extension_over_the_cap_squeezes_its_new_part_beside_the_parent_as_it_is(tmp_path: Path) -> None:
    """A smooth parent leaves room that a noisy new part at full quality would pass: the new part is encoded at the
    bitrate that fits, and the parent keeps its own bits (encoding the whole again would cost it a generation)."""
    smooth = textured_video(frames=24)
    smooth[..., 2] = 128  # no noise: small
    noisy = textured_video(frames=8, seed=1)
    parent = encode_mp4(smooth, 8, tmp_path / "parent.mp4", max_bytes=10 * 1024 * 1024)
    full_part = encode_mp4(noisy, 8, tmp_path / "full-part.mp4", max_bytes=10 * 1024 * 1024)
    cap = parent.size_bytes + full_part.size_bytes * 3 // 4
    extended = encode_extension(parent.path, noisy, 8, tmp_path / "extended.mp4", cap)
    assert extended.bitrate is not None and extended.size_bytes <= cap
    decoded, _ = decode_video(extended.path)
    assert len(decoded) == 32 and np.array_equal(decoded[:24], decode_video(parent.path)[0])
    assert np.abs(decoded[24:, ..., :2].astype(int) - noisy[..., :2]).mean() < 12  # the new frames, coarser
    # With `part` (encoded along the render at full quality) the same.
    along = encode_extension(parent.path, noisy, 8, tmp_path / "along.mp4", cap, part=full_part.path)
    assert along.bitrate is not None and np.array_equal(decode_video(along.path)[0][:24], decoded[:24])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["along.mp4", "extended.mp4", "full-part.mp4", "parent.mp4"]


def test_a_new_part_is_not_starved_to_spare_the_parent(tmp_path: Path) -> None:
    """When what the cap leaves beside the parent would give the new frames less than the whole video encoded
    again would give each second, the whole is encoded again."""
    video = textured_video(frames=32)
    parent = encode_mp4(video[:24], 8, tmp_path / "parent.mp4", max_bytes=10 * 1024 * 1024)
    cap = parent.size_bytes * 33 // 32  # 3 s of parent, 1 s new: the new second would get a 32nd of the bits
    extended = encode_extension(parent.path, video[24:], 8, tmp_path / "extended.mp4", cap)
    assert extended.size_bytes <= cap and extended.frames == 32
    assert not np.array_equal(decode_video(extended.path)[0][:24], decode_video(parent.path)[0])
    assert append_squeezed(parent.path, video[24:], 8, tmp_path / "squeezed.mp4", cap) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extended.mp4", "parent.mp4"]


def test_frames_are_picked_out_of_a_video_by_index(tmp_path: Path) -> None:
    video = textured_video(frames=20)
    encoded = encode_mp4(video, 8, tmp_path / "clip.mp4", max_bytes=10 * 1024 * 1024)
    decoded, _ = decode_video(encoded.path)
    picked = frames_at(encoded.path, [0, 7, 19])
    assert sorted(picked) == [0, 7, 19]
    assert all(np.array_equal(picked[index], decoded[index]) for index in picked)
    assert frames_at(encoded.path, []) == {}
    assert frame_count(encoded.path) == 20
    with pytest.raises(EncodeError, match="no frame 20"):
        frames_at(encoded.path, [3, 20])
    assert spritesheet_indices(20, 4) == (0, 6, 13, 19) and spritesheet_indices(2, 16) == (0, 1)


def test_frames_of_a_long_chain_are_each_decoded_from_the_keyframe_before_them(tmp_path: Path) -> None:
    """A chain of extensions has a keyframe where each part begins: the frames a spritesheet picks are decoded from
    the keyframe before each, and come out as decoding the whole video gives them."""
    video = textured_video(frames=8 * 5)
    chain = encode_mp4(video[:8], 8, tmp_path / "chain.mp4", max_bytes=10 * 1024 * 1024).path
    for step in range(1, 5):
        joined = append_to_mp4(chain, video[8 * step : 8 * (step + 1)], 8, tmp_path / "next.mp4", 10 * 1024 * 1024)
        assert joined is not None
        joined.path.replace(chain)
    every, _ = decode_video(chain)
    picked = [0, 7, 8, 9, 16, 23, 31, 33, 39]  # around the parts' first frames, which are keyframes
    for source in (chain, chain.read_bytes()):
        seeking = reading._frames_by_seeking(source, picked)
        assert seeking is not None and sorted(seeking) == picked
        assert all(np.array_equal(seeking[index], every[index]) for index in picked)
        assert all(np.array_equal(frame, every[index]) for index, frame in frames_at(source, [39, 5, 16]).items())
    with pytest.raises(EncodeError, match="no frame 40"):
        frames_at(chain, [3, 40])


def test_frames_of_a_stream_whose_timing_counts_no_whole_frames_are_decoded_in_order(tmp_path: Path) -> None:
    frames = textured_video(frames=6)
    tail = save_tail(frames, tmp_path / "tail.mkv", 24)  # Matroska counts milliseconds: 1/24 s is not a whole number
    assert reading._frames_by_seeking(tail, [1, 4]) is None
    picked = frames_at(tail, [4, 1])
    assert np.array_equal(picked[1], frames[1]) and np.array_equal(picked[4], frames[4])


@pytest.mark.parametrize("parts", [(24,), (17, 7), (5, 8, 8, 3)])
def test_a_video_written_part_by_part_is_the_video_encoded_at_once(tmp_path: Path, parts) -> None:
    frames = textured_video(24)
    whole = encode_mp4(frames, 8, tmp_path / "whole.mp4", max_bytes=10**8)
    writer = Mp4Writer(tmp_path / "parts.mp4", 8)
    start = 0
    for count in parts:
        writer.write(frames[start : start + count])
        start += count
    written = writer.finish(max_bytes=10**8)
    assert written is not None and written.path == tmp_path / "parts.mp4"
    assert (written.frames, written.width, written.height, written.fps, written.crf) == (24, 192, 128, 8, whole.crf)
    assert top_level_boxes(written.path).index("moov") < top_level_boxes(written.path).index("mdat")
    decoded, fps = decode_video(written.path)
    assert fps == 8
    # The same encoder settings as the encode in one go. Not bit for bit: x264's frame threads make some of any
    # encodes of these noisy frames differ (3 of 20 whole encodes in a row did), so: the same quality and size.
    assert abs(psnr(decoded, frames) - psnr(decode_video(whole.path)[0], frames)) < 1.0
    assert 0.8 < written.size_bytes / whole.size_bytes < 1.25
    assert sorted(path.name for path in tmp_path.iterdir()) == ["parts.mp4", "whole.mp4"]  # no temporary file left


def test_a_video_written_part_by_part_over_the_cap_leaves_no_file(tmp_path: Path) -> None:
    writer = Mp4Writer(tmp_path / "video.mp4", 8)
    writer.write(textured_video(12))
    writer.write(textured_video(12, seed=1))
    assert writer.finish(max_bytes=1000) is None
    assert list(tmp_path.iterdir()) == []


def test_an_abandoned_video_leaves_no_file_and_parts_must_match(tmp_path: Path) -> None:
    writer = Mp4Writer(tmp_path / "video.mp4", 8)
    writer.write(textured_video(4))
    with pytest.raises(ValueError, match="192x128"):
        writer.write(textured_video(4, width=96))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_odd_sized_parts_are_padded_like_a_whole_encode(tmp_path: Path) -> None:
    frames = textured_video(10, height=63, width=95)
    writer = Mp4Writer(tmp_path / "video.mp4", 8)
    writer.write(frames[:4])
    writer.write(frames[4:])
    written = writer.finish(max_bytes=10**8)
    assert written is not None and written.padded and (written.width, written.height) == (96, 64)
    assert written.frames == 10
