"""An MP4 encoded as parts on parallel encoders (generator/media/parts.py): one stream, every frame in order, the
quality of one encoder's, a keyframe where each part starts, nothing left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from generator.media import parts, reading, writing
from generator.media.joining import append_part
from generator.media.parts import MIN_PART_FRAMES, PartedMp4Writer, mp4_writer, part_bounds
from generator.media.reading import decode_video
from generator.media.writing import Mp4Writer, encode_mp4
from generator.render import plan_segments
from tests.generator.test_encode import psnr, textured_video, top_level_boxes


def keyframe_indices(path: Path) -> list[int]:
    """The frames (in display order) the stream's keyframes are."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [packet for packet in container.demux(stream) if packet.dts is not None]
    ordered = sorted(packets, key=lambda packet: packet.pts)
    return [index for index, packet in enumerate(ordered) if packet.is_keyframe]


@pytest.mark.parametrize(
    ("frames", "asked", "expected"),
    [
        (121, 5, [0, 24, 48, 73, 97, 121]),
        (121, 8, [0, 24, 48, 73, 97, 121]),  # never under MIN_PART_FRAMES
        (121, 2, [0, 60, 121]),
        (47, 4, [0, 47]),  # too short to cut
        (1, 3, [0, 1]),
    ],
)
def test_frames_are_cut_into_parts_of_a_second_at_least(frames: int, asked: int, expected: list[int]) -> None:
    bounds = part_bounds(frames, asked)
    assert bounds == expected
    lengths = np.diff(bounds)
    assert lengths.sum() == frames and (len(lengths) == 1 or lengths.min() >= MIN_PART_FRAMES)


@pytest.mark.parametrize(
    ("writes", "total", "cuts"),
    [
        ((96,), None, [0, 48]),
        ((50, 46), None, [0, 25, 50]),  # every write cut, when the whole is not known
        ((30, 66), 96, [0, 30, 63]),  # the writes before the last go to one encoder: the last one is cut
        ((10, 20, 66), 96, [0, 30, 63]),
    ],
)
def test_a_video_encoded_as_parallel_parts_is_one_stream_of_every_frame(tmp_path: Path, writes, total, cuts) -> None:
    frames = textured_video(sum(writes))
    whole = encode_mp4(frames, 24, tmp_path / "whole.mp4", max_bytes=10**8)
    writer = PartedMp4Writer(tmp_path / "parts.mp4", 24, parts=2, total_frames=total)
    start = 0
    for count in writes:
        writer.write(frames[start : start + count])
        start += count
    written = writer.finish(max_bytes=10**8)
    assert written is not None and written.path == tmp_path / "parts.mp4"
    assert (written.frames, written.width, written.height, written.fps, written.crf) == (96, 192, 128, 24, whole.crf)
    assert written.size_bytes == written.path.stat().st_size
    decoded, fps = decode_video(written.path)
    assert fps == 24 and len(decoded) == 96
    # In order and as good as one encoder's (each frame nearer its own source than its neighbours').
    assert abs(psnr(decoded, frames) - psnr(decode_video(whole.path)[0], frames)) < 1.0
    for index in range(1, 95):
        own = np.abs(decoded[index, ..., :2].astype(int) - frames[index, ..., :2]).mean()
        other = np.abs(decoded[index, ..., :2].astype(int) - frames[index + 1, ..., :2]).mean()
        assert own < other, index
    assert keyframe_indices(written.path) == cuts  # each part opens on a keyframe, and only there
    # The headers of a one-encoder MP4 of this size: an extension's part can follow it, and it can follow a parent.
    assert reading.stream_header(written.path) == reading.stream_header(whole.path)
    boxes = top_level_boxes(written.path)
    assert boxes.index("moov") < boxes.index("mdat")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["parts.mp4", "whole.mp4"]  # no part file left


def test_the_parts_are_encoded_at_once_on_a_share_of_the_cores(tmp_path: Path, monkeypatch) -> None:
    threads: set[int] = set()
    frame_threads: list[int] = []
    real = writing.encode_attempt
    both_started = threading.Barrier(2, timeout=30)  # fails unless the two parts are being encoded at the same time

    def encode_attempt(*args, **kwargs):
        threads.add(threading.get_ident())
        frame_threads.append(kwargs["threads"])
        both_started.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(writing, "encode_attempt", encode_attempt)
    writer = PartedMp4Writer(tmp_path / "video.mp4", 24, parts=2, cores=6)
    writer.write(textured_video(48, height=64, width=96))
    assert writer.finish(max_bytes=10**8) is not None
    assert len(threads) == 2 and frame_threads == [3, 3]


def test_a_parted_part_follows_its_parent_stream(tmp_path: Path) -> None:
    video = textured_video(24 + 60)
    parent = encode_mp4(video[:24], 24, tmp_path / "parent.mp4", max_bytes=10**8)
    writer = PartedMp4Writer(tmp_path / "new.mp4", 24, parts=2, follows=parent.path)
    writer.write(video[24:])
    part = writer.finish(max_bytes=10**8)
    assert part is not None
    joined = append_part(parent.path, part.path, 24, tmp_path / "joined.mp4", max_bytes=10**8)
    assert joined is not None and joined.frames == 84
    decoded, _ = decode_video(joined.path)
    assert np.array_equal(decoded[:24], decode_video(parent.path)[0])
    assert np.abs(decoded[24:, ..., :2].astype(int) - video[24:, ..., :2]).mean() < 8


def test_parts_over_the_cap_or_abandoned_leave_no_file(tmp_path: Path) -> None:
    writer = PartedMp4Writer(tmp_path / "video.mp4", 24, parts=2)
    writer.write(textured_video(48))
    assert writer.finish(max_bytes=1000) is None
    assert writer.size_bytes is not None and writer.size_bytes > 1000  # what encode_mp4's smaller tries start from
    assert list(tmp_path.iterdir()) == []
    writer = PartedMp4Writer(tmp_path / "video.mp4", 24, parts=3)
    writer.write(textured_video(48))
    with pytest.raises(ValueError, match="192x128"):
        writer.write(textured_video(48, width=96))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    writer = PartedMp4Writer(tmp_path / "video.mp4", 24, parts=2, total_frames=96)
    writer.write(textured_video(48))  # to the one encoder of the writes before the last
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_video_that_ends_before_its_announced_length_is_what_was_written(tmp_path: Path) -> None:
    writer = PartedMp4Writer(tmp_path / "video.mp4", 24, parts=2, total_frames=96)
    writer.write(textured_video(30))
    written = writer.finish(max_bytes=10**8)
    assert written is not None and written.frames == 30
    assert len(decode_video(written.path)[0]) == 30 and keyframe_indices(written.path) == [0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["video.mp4"]


def test_odd_sizes_are_padded_and_one_part_is_one_encoder(tmp_path: Path) -> None:
    writer = PartedMp4Writer(tmp_path / "video.mp4", 24, parts=2)
    writer.write(textured_video(50, height=63, width=95))
    written = writer.finish(max_bytes=10**8)
    assert written is not None and written.padded and (written.width, written.height, written.frames) == (96, 64, 50)
    assert isinstance(mp4_writer(tmp_path / "a.mp4", 24), Mp4Writer)
    assert isinstance(mp4_writer(tmp_path / "b.mp4", 24, parts=4), PartedMp4Writer)
    with pytest.raises(ValueError, match="at least 2"):
        PartedMp4Writer(tmp_path / "c.mp4", 24, parts=1)
    with pytest.raises(ValueError, match="no frames"):
        PartedMp4Writer(tmp_path / "d.mp4", 24, parts=2).finish(10**8)
    assert parts.MIN_PART_FRAMES == 24


async def test_the_service_encodes_along_the_render_in_parts_and_extends_such_a_video(tmp_path: Path) -> None:
    """GENERATOR_MP4_PARTS reaches the worker: a chained tiny clip comes out as one stream, its earlier segments
    from one encoder and its last segment from its own, and its extension continues it as it is."""
    from tests.generator.test_extensions import extend
    from tests.support.generator_service import poll, probe_mp4, running_generator, sdk_client, tiny_backend

    async with running_generator(tmp_path, GENERATOR_MP4_PARTS="2") as running, sdk_client(running) as client:
        assert running.service.settings.mp4_parts == 2
        parent = await client.videos.create_and_poll(prompt="a kite", seconds="4", poll_interval_ms=50)
        assert parent.status == "completed", parent.error
        data = (await client.videos.download_content(parent.id)).read()
        (tmp_path / "parent.mp4").write_bytes(data)
        segments = plan_segments(tiny_backend().profile, 32, 0)
        assert len(segments) > 1
        # The segments before the last to one encoder; the last (under a second: one part) to its own.
        assert keyframe_indices(tmp_path / "parent.mp4") == [0, 32 - segments[-1].keep]
        probed = probe_mp4(data)
        assert len(probed["frames"]) == 32 and probed["faststart"]
        child = await poll(client, (await extend(client, parent.id, "the string snaps", "2")).id)
        assert child.status == "completed", child.error
        child_data = (await client.videos.download_content(child.id)).read()
        child_frames = probe_mp4(child_data)["frames"]
        assert len(child_frames) == 48
        assert np.array_equal(child_frames[:32], probed["frames"]), "the parent's stream is continued as it is"


def test_streams_whose_headers_differ_are_not_joined(tmp_path: Path) -> None:
    from generator.media import EncodeError
    from generator.media.joining import join_streams

    small = encode_mp4(textured_video(8, height=64, width=96), 24, tmp_path / "small.mp4", max_bytes=10**8)
    large = encode_mp4(textured_video(8), 24, tmp_path / "large.mp4", max_bytes=10**8)
    with pytest.raises(EncodeError, match="do not share one stream's headers"):
        join_streams([small.path, large.path], tmp_path / "joined.mp4")
    assert not (tmp_path / "joined.mp4").exists()
    assert join_streams([small.path, small.path], tmp_path / "twice.mp4") == [8, 8]
