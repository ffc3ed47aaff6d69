"""An uploaded clip to extend is judged by its header and decoded frame by frame at the render size (issue 17: a
22.8 KB MP4 of 300 black 1080p frames took the worker from 0.62 to 4.25 GB)."""

from __future__ import annotations

import io
import tracemalloc

import av
import numpy as np
import openai
import pytest

from generator import videos
from generator.inputs import load_clip
from tests.support.generator_service import poll, running_generator, sdk_client


def black_mp4(width: int, height: int, frames: int, fps: int = 30) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51"}
        black = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(black):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def test_a_clip_is_decoded_a_frame_at_a_time_at_the_render_size():
    clip = black_mp4(1920, 1080, 60)  # 373 MB as RGB at its own size; 746 MB once stacked
    tracemalloc.start()
    try:
        frames = load_clip(clip, 96, 64, fps=24)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames.shape == (48, 64, 96, 3)  # 60 frames at 30 fps are 48 at 24
    assert frames.max() < 30
    assert peak < 40 * 1024 * 1024, f"decoding held {peak / 2**20:.0f} MB"


def test_only_the_last_frames_are_kept_when_only_they_are_needed():
    clip = black_mp4(320, 240, 40)
    assert load_clip(clip, 96, 64, last=9).shape == (9, 64, 96, 3)


async def test_a_clip_too_large_in_all_is_refused_by_its_header(tmp_path, monkeypatch):
    monkeypatch.setattr(videos, "MAX_CLIP_PIXELS", 1920 * 1080 * 20)
    clip = black_mp4(1920, 1080, 30)
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.videos.extend(prompt="more", seconds="1", video=("clip.mp4", clip, "video/mp4"))
    assert raised.value.body["param"] == "video"
    assert "30 frames of 1920×1080" in raised.value.body["message"]


async def test_a_clip_longer_than_allowed_is_refused_without_decoding_it(tmp_path):
    clip = black_mp4(64, 64, 90)  # 3 s
    async with (
        running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_SECONDS=2) as running,
        sdk_client(running) as client,
    ):
        with pytest.raises(openai.BadRequestError) as raised:
            await client.videos.extend(prompt="more", seconds="1", video=("clip.mp4", clip, "video/mp4"))
    assert "longer than 2 s" in raised.value.body["message"]


async def test_an_uploaded_1080p_clip_is_extended_at_the_render_size(tmp_path):
    clip = black_mp4(1920, 1080, 30)
    async with running_generator(tmp_path) as running, sdk_client(running) as client:
        video = await client.videos.extend(prompt="more", seconds="1", video=("clip.mp4", clip, "video/mp4"))
        done = await poll(client, video.id)
    assert done.status == "completed", done.error
    assert done.size == "1920x1080"  # the uploaded clip's own size
    assert done.model_extra["rendered_size"] == "96x64"
