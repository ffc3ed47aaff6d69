"""Long videos and their sound, attacked as members and clients would: chains to the length limit, parents with sound
under a byte cap, uploaded clips whose sound starts late, frame rates whose frames are not whole samples, and a clip
with sound continued in silence."""

from __future__ import annotations

import io
import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import openai
import pytest

from generator.media import audio, joining, reading, writing
from generator.render import VideoSpec, render_video
from tests.support.generator_service import poll, running_generator, sdk_client, tiny_sound_backend

FPS = 8  # the tiny models' frame rate
RATE = 16_000  # the tiny sound model's sample rate
SPEC = dict(prompt="rain on a tin roof", width=96, height=64, steps=2, guidance_scale=1.0, seed=7)


def stream_bytes(data: bytes | Path) -> dict[str, int]:
    with reading.open_video(data) as container:
        sizes = {"video": 0, "audio": 0}
        for packet in container.demux():
            if packet.dts is not None:
                sizes[packet.stream.type] += packet.size
    return sizes


def tone_clip(fps: int, seconds: float, sound_from: float, onset: float, rate: int = 48_000) -> bytes:
    """An MP4 whose picture turns bright at `onset` and whose sound (a stream that starts at `sound_from`) is silent
    until a tone at `onset`: in sync, both change at once."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        sound = container.add_stream("aac", rate=rate, layout="mono")
        for index in range(round(seconds * fps)):
            level = 230 if index >= onset * fps else 20
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        times = np.arange(round((seconds - sound_from) * rate)) / rate + sound_from
        samples = np.where(times >= onset, 0.5 * np.sin(2 * np.pi * 440 * times), 0).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, round(sound_from * rate), Fraction(1, rate)
        for packet in [*sound.encode(frame), *sound.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def first_loud(samples: np.ndarray, rate: int) -> float:
    return float(np.nonzero(np.abs(samples[0]) > 0.1)[0][0] / rate)


# --- the byte cap: a parent's sound is not its video -----------------------------------------------------------


def test_a_parents_sound_is_not_charged_against_the_cap_beside_its_continued_stream(tmp_path: Path) -> None:
    """The extension's MP4 carries the parent's video packets and a new AAC track of the whole sound (whose budget
    the caller took off the cap already). Counting the parent's old AAC packets as well made a part that fits beside
    the parent's video look too big: the whole video was decoded and encoded again, a generation lost."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (3 * FPS, 64, 64, 3), dtype=np.uint8)
    parent = tmp_path / "parent.mp4"
    writing.encode_mp4(frames[: 2 * FPS], FPS, parent, 10**9)
    noise = rng.uniform(-0.8, 0.8, (2, 2 * RATE)).astype(np.float32)
    audio.add_sound(parent, audio.SoundTrack(noise, RATE), 128_000)
    part = writing.encode_mp4(frames[2 * FPS :], FPS, tmp_path / "part.mp4", 10**9).size_bytes
    parent_sizes = stream_bytes(parent)
    assert parent_sizes["audio"] > 16_000  # far more than the encoders' slack between runs
    # Room for the parent's video and the new part, not for the parent's old sound as well.
    cap = parent.stat().st_size - parent_sizes["audio"] + part + parent_sizes["audio"] // 2

    encoded = joining.encode_extension(parent, frames[2 * FPS :], FPS, tmp_path / "child.mp4", cap)

    assert encoded.frames == 3 * FPS and encoded.size_bytes <= cap
    before, _ = reading.decode_video(parent)
    after, _ = reading.decode_video(encoded.path)
    assert np.array_equal(after[: 2 * FPS], before)  # the parent's stream continued as it was


# --- an uploaded clip's sound keeps its place ------------------------------------------------------------------


@pytest.mark.parametrize("sound_from", [0.0, 0.5])
def test_an_uploaded_clips_sound_is_read_in_sync_with_its_picture(sound_from: float) -> None:
    """A clip whose sound stream starts after its video (a screen recording, an edited phone clip) keeps its
    sound where it plays: the tone that starts with the bright picture at 1.5 s is read at 1.5 s, not half a second
    early (the samples were taken from the stream's first as if it started with the video)."""
    clip = tone_clip(fps=24, seconds=3, sound_from=sound_from, onset=1.5)
    track = audio.read_sound(clip, rate=RATE)
    assert track is not None
    assert abs(first_loud(track.samples, RATE) - 1.5) < 0.005
    assert abs(track.seconds - 3) < 0.005


async def test_an_uploaded_clip_extended_keeps_its_sound_on_its_picture(tmp_path: Path) -> None:
    clip = tone_clip(fps=24, seconds=3, sound_from=0.5, onset=1.5)
    async with running_generator(tmp_path, tiny_sound_backend(), GENERATOR_MODEL="tiny-sound") as run:
        async with sdk_client(run) as client:
            video = await client.videos.extend(prompt="more", seconds="1", video=("clip.mp4", clip, "video/mp4"))
            video = await poll(client, video.id)
            assert video.status == "completed", video.error
            whole = audio.load_sound(run.service.store.path_for(video.id, "audio", 1))
    assert len(whole) == 4 * RATE
    assert abs(first_loud(whole.samples, RATE) - 1.5) < 0.005  # frame 12 of 8 fps: where the picture turns


# --- the track's length over a chain ---------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [7, 9])
def test_a_tracks_length_does_not_drift_where_a_frame_is_not_whole_samples(fps: int) -> None:
    """At 7 or 9 fps a frame is 2285.7 or 1777.8 samples of 16 kHz. Each segment's sound was cut by its own frame
    count's rounding, so every seam added or lost up to a sample: a 59 s chain at 7 fps was 17 samples longer than
    its video (the MP4's audio 59.002 s against 59 s). Now the track ends where the video's last frame does."""
    backend = tiny_sound_backend()
    opening = 5 * fps + 3  # the parent's frames: its track is as long as they are
    rng = np.random.default_rng(1)
    parent = audio.SoundTrack(rng.uniform(-0.5, 0.5, (2, audio.sample_at(opening, fps, RATE))).astype(np.float32), RATE)
    tail = rng.integers(0, 256, (9, 64, 96, 3), dtype=np.uint8)
    spec = VideoSpec(total_frames=6 * fps, fps=fps, sound=True, parent_tail=tail, parent_sound=parent, **SPEC)
    rendered = render_video(backend, spec)
    assert rendered.segments >= 4
    assert rendered.sound is not None
    assert len(rendered.sound) == audio.sample_at(opening + 6 * fps, fps, RATE)
    assert np.array_equal(rendered.sound.samples[:, :1000], parent.samples[:, :1000])  # the parent's, kept


# --- a clip with sound continued in silence --------------------------------------------------------------------


def test_a_clip_with_sound_continued_in_silence_fades_out_before_the_seam() -> None:
    """`sound: false` on an extension (or a model without sound continuing a clip with it) keeps the parent's sound
    and adds silence. It was cut to silence at the seam: a step as large as the sound itself, a click."""
    opening = 2 * FPS
    times = np.arange(audio.sample_at(opening, FPS, RATE), dtype=np.float32) / RATE
    tone = (0.5 * np.cos(2 * np.pi * 500 * times))[None].repeat(2, axis=0).astype(np.float32)  # loud at the seam
    tail = np.random.default_rng(2).integers(0, 256, (9, 64, 96, 3), dtype=np.uint8)
    spec = VideoSpec(
        total_frames=FPS,
        fps=FPS,
        sound=False,
        parent_tail=tail,
        parent_sound=audio.SoundTrack(tone, RATE),
        **SPEC,
    )
    rendered = render_video(tiny_sound_backend(), spec)
    sound = rendered.sound
    assert sound is not None and len(sound) == audio.sample_at(opening + FPS, FPS, RATE)
    seam = len(tone[0])
    fade = round(audio.CROSSFADE_SECONDS * RATE)
    assert np.array_equal(sound.samples[:, : seam - fade], tone[:, : seam - fade])  # kept up to the fade
    assert not sound.samples[:, seam:].any()  # silence after the seam
    steps = np.abs(np.diff(sound.samples, axis=1)).max(axis=0)
    inner = steps[seam - RATE // 10 : seam - fade].max()  # the tone's own steps
    assert steps[seam - fade - 1 : seam + 1].max() <= inner  # no step at the seam bigger than the sound's own


# --- the byte cap with sound: a clear error --------------------------------------------------------------------


async def test_a_cap_too_small_for_the_sound_says_so(tmp_path: Path) -> None:
    """20 s of sound at the lowest AAC bitrate need more than a 64 KiB cap: the failure named a cap of 1 byte."""
    async with running_generator(tmp_path, tiny_sound_backend(), GENERATOR_MODEL="tiny-sound") as run:
        async with sdk_client(run) as client:
            video = await client.videos.create_and_poll(
                prompt="rain", seconds="20", extra_body={"max_bytes": 65536}, poll_interval_ms=50
            )
    assert video.status == "failed"
    message = video.error.message
    assert "sound" in message and "65536" in message and "under 1 bytes" not in message.split("(")[0], message


# --- a chain to the limit and one past it ----------------------------------------------------------------------


async def test_a_chain_with_sound_to_the_limit_stays_one_stream_in_sync_and_refuses_one_more(tmp_path: Path) -> None:
    async with running_generator(
        tmp_path, tiny_sound_backend(), GENERATOR_MODEL="tiny-sound", GENERATOR_MAX_SECONDS=6
    ) as run:
        async with sdk_client(run) as client:
            video = await client.videos.create_and_poll(prompt="a drum", seconds="2", poll_interval_ms=50)
            for _ in range(2):
                extension = await client.videos.extend(
                    prompt="louder", seconds="2", video=openai.omit, extra_body={"video": {"id": video.id}}
                )
                video = await poll(client, extension.id)
                assert video.status == "completed", video.error
            data = (await client.videos.download_content(video.id)).read()
            with pytest.raises(openai.BadRequestError) as refused:
                await client.videos.extend(
                    prompt="more", seconds="1", video=openai.omit, extra_body={"video": {"id": video.id}}
                )
    assert video.seconds == "6"
    assert refused.value.body["param"] == "seconds" and "7 s" in refused.value.body["message"]
    with av.open(io.BytesIO(data)) as container:
        stream, sound = container.streams.video[0], container.streams.audio[0]
        stored = [packet for packet in container.demux(stream) if packet.dts is not None]
        assert all(a.dts < b.dts for a, b in itertools.pairwise(stored))  # decoding order, rising
        packets = sorted(stored, key=lambda packet: packet.pts)
        ticks = round(1 / (stream.average_rate * stream.time_base))
        assert [p.pts for p in packets] == [index * ticks for index in range(6 * FPS)]  # no gap, none doubled
        assert all(packets[index].is_keyframe for index in (0, 2 * FPS, 4 * FPS))  # each link opens on one
        assert stream.duration * stream.time_base == sound.duration * sound.time_base == 6
