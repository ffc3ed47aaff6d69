"""Clips with sound (issue 21): the tiny LTX-2 model renders sound with its frames; the MP4 carries it as AAC in sync
with the video, extensions continue it without a gap, silence on request and silent models give no audio stream,
and the byte cap holds both streams."""

from __future__ import annotations

import dataclasses
import io
import json
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
import numpy as np
import openai
import pytest

from generator.media import audio
from generator.pipelines import RenderRequest, load_backend
from generator.pipelines.tiny import TINY_SOUND_PROFILE, save_tiny_pipeline
from generator.render import VideoSpec, render_video
from tests.generator.conftest import tiny_settings
from tests.support.generator_service import poll, running_generator, sdk_client, tiny_sound_backend

FPS = 8  # the tiny models' frame rate
RATE = 16_000  # the tiny sound model's sample rate
SPEC = dict(prompt="rain on a tin roof", width=96, height=64, fps=FPS, steps=2, guidance_scale=1.0, seed=7)


def streams_of(data: bytes) -> dict[str, object]:
    """What an MP4 holds: each stream's codec, start and duration (seconds), and the audio decoded."""
    with av.open(io.BytesIO(data)) as container:
        facts: dict[str, object] = {"audio": None}
        video = container.streams.video[0]
        facts["video_start"] = video.start_time * video.time_base
        facts["video_seconds"] = video.duration * video.time_base
        facts["video_frames"] = sum(1 for _ in container.decode(video))
        if container.streams.audio:
            sound = container.streams.audio[0]
            facts["audio"] = sound.codec_context.name
            facts["audio_start"] = sound.start_time * sound.time_base
            facts["audio_seconds"] = sound.duration * sound.time_base
            facts["audio_rate"] = sound.codec_context.sample_rate
        return facts


def decoded_samples(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples for frame in container.decode(container.streams.audio[0]))


def seam_jump(samples: np.ndarray, seam: int) -> tuple[float, float]:
    """The step between the samples either side of `seam`, and the largest step inside 0.1 s before and after."""
    steps = np.abs(np.diff(samples, axis=1)).max(axis=0)
    window = RATE // 10
    inner = np.concatenate([steps[seam - window : seam - 1], steps[seam : seam + window]])
    return float(steps[seam - 1]), float(inner.max())


@pytest.fixture
async def sound_client(tmp_path: Path):
    async with running_generator(tmp_path / "generator", tiny_sound_backend(), GENERATOR_MODEL="tiny-sound") as run:
        async with sdk_client(run) as client:
            yield client, run


def stored_sound(run, video_id: str) -> audio.SoundTrack:
    return audio.load_sound(run.service.store.path_for(video_id, "audio", 1))


# --- the track: joining parts ----------------------------------------------------------------------------------


def test_joined_parts_keep_every_sample_and_crossfade_before_the_seam() -> None:
    time = np.arange(RATE, dtype=np.float32) / RATE
    before = (0.5 * np.sin(2 * np.pi * 220 * time))[None].astype(np.float32)
    lead_in = (0.5 * np.sin(2 * np.pi * 330 * time[:4000] + 1.0))[None].astype(np.float32)
    after = (0.5 * np.sin(2 * np.pi * 330 * (time[:8000] + 4000 / RATE) + 1.0))[None].astype(np.float32)
    joined = audio.join(before, lead_in, after, RATE)
    fade = round(audio.CROSSFADE_SECONDS * RATE)
    assert joined.shape == (1, RATE + 8000)  # no sample lost or doubled
    assert np.array_equal(joined[:, : RATE - fade], before[:, :-fade])  # untouched before the crossfade
    assert np.array_equal(joined[:, RATE:], after)  # the new part as rendered from the seam on
    jump, inner = seam_jump(joined, RATE)
    assert jump <= inner
    # Cut without the crossfade, the waves would meet out of phase: a step far above the waves' own.
    assert abs(float(after[0, 0] - before[0, -1])) > 3 * inner


def test_a_saved_track_reads_back_the_same_and_saves_again_unchanged(tmp_path: Path) -> None:
    samples = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 5000)).astype(np.float32)
    audio.save_sound(audio.SoundTrack(samples, RATE), tmp_path / "a.flac")
    once = audio.load_sound(tmp_path / "a.flac")
    assert len(once) == 5000 and once.rate == RATE and np.abs(once.samples - samples).max() < 1 / 32767
    audio.save_sound(once, tmp_path / "b.flac")
    assert np.array_equal(audio.load_sound(tmp_path / "b.flac").samples, once.samples)  # one quantisation, ever


# --- the model -------------------------------------------------------------------------------------------------


def test_the_tiny_sound_model_round_trips_through_from_pretrained(tmp_path: Path) -> None:
    folder = save_tiny_pipeline(tmp_path / "tiny-sound", family="ltx2")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "LTX2ConditionPipeline"
    loaded = load_backend(tiny_settings(model=str(folder)))
    assert loaded.profile == dataclasses.replace(TINY_SOUND_PROFILE, name=str(folder))
    request = RenderRequest(
        prompt="a drum", width=96, height=64, num_frames=17, seed=3, num_inference_steps=2, guidance_scale=1.0, fps=8
    )
    frames, sound = loaded.render_with_sound(request)
    expected_frames, expected_sound = tiny_sound_backend().render_with_sound(request)
    # The same model: loaded weights compute within float rounding of the built ones (1e-6 here; LTX-2's kernels
    # take another path for loaded tensors), so a pixel may land one level off.
    assert np.abs(frames.astype(int) - expected_frames).max() <= 1
    np.testing.assert_allclose(sound, expected_sound, atol=1e-5)
    assert sound.dtype == np.float32 and sound.shape[0] == 2
    # The vocoder gives about the clip's length (render.py fits it exactly): within a few of its hops.
    assert abs(sound.shape[1] - 17 / FPS * RATE) < 4 * 160 * 4


def test_an_image_start_renders_with_sound() -> None:
    backend = tiny_sound_backend()
    image = np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    plain = RenderRequest(
        prompt="a drum", width=96, height=64, num_frames=9, seed=3, num_inference_steps=2, guidance_scale=1.0, fps=8
    )
    frames, sound = backend.render_with_sound(dataclasses.replace(plain, image=image))
    assert frames.shape == (9, 64, 96, 3) and sound.shape[0] == 2
    assert not np.array_equal(frames, backend.render(plain))  # the image reached the model


def test_a_long_render_joins_its_segments_sound_without_a_gap() -> None:
    backend = tiny_sound_backend()
    frames = 3 * FPS  # more than one call renders (17 frames): two segments
    rendered = render_video(backend, VideoSpec(total_frames=frames, sound=True, **SPEC))
    assert rendered.segments == 2
    sound = rendered.sound
    assert sound is not None and sound.rate == RATE
    assert len(sound) == audio.sample_at(frames, FPS, RATE)  # exactly the video's length
    # The first segment kept its first 17 frames' sound as rendered; the seam sits at its last kept frame.
    seam = audio.sample_at(17, FPS, RATE)
    jump, inner = seam_jump(sound.samples, seam)
    assert jump <= inner
    assert np.abs(sound.samples[:, seam - 400 : seam + 400]).max() > 0  # sound, not a stretch of silence


def test_silence_asked_of_a_sound_model_renders_no_track() -> None:
    rendered = render_video(tiny_sound_backend(), VideoSpec(total_frames=FPS, sound=False, **SPEC))
    assert rendered.sound is None


# --- through the API -------------------------------------------------------------------------------------------


async def test_a_clip_from_the_sound_model_has_aac_in_sync_with_its_video(sound_client) -> None:
    client, run = sound_client
    video = await client.videos.create_and_poll(prompt="a dog barks twice", seconds="2", poll_interval_ms=50)
    assert video.status == "completed", video.error
    assert video.model_extra["has_audio"] is True
    data = (await client.videos.download_content(video.id)).read()
    facts = streams_of(data)
    assert facts["audio"] == "aac" and facts["audio_rate"] == RATE
    assert facts["video_frames"] == 2 * FPS
    # Both streams start at 0 and last the clip's 2 s: to the sample in the container, within one AAC frame decoded.
    assert facts["audio_start"] == facts["video_start"] == 0
    assert facts["audio_seconds"] == facts["video_seconds"] == Fraction(2)
    assert abs(decoded_samples(data) - 2 * RATE) <= audio.AAC_FRAME
    assert len(stored_sound(run, video.id)) == 2 * RATE
    # The previews are the video's, as before.
    thumbnail = (await client.videos.download_content(video.id, variant="thumbnail")).read()
    assert thumbnail[:4] == b"RIFF"


async def test_an_edit_is_refused_where_the_model_cannot_edit(sound_client) -> None:
    """LTX-2's pipeline has no denoise strength over a source: a clear 400, not a silent new render."""
    client, _ = sound_client
    video = await client.videos.create_and_poll(prompt="a dog barks", seconds="1", poll_interval_ms=50)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.videos.edit(prompt="at night", video=openai.omit, extra_body={"video": {"id": video.id}})
    assert refused.value.body["param"] == "video"
    assert (await client.models.list()).data[0].model_extra["supports_edit"] is False


async def test_the_models_listing_says_the_model_has_sound(sound_client) -> None:
    _, run = sound_client
    async with aiohttp.ClientSession() as session, session.get(f"{run.base_url}/models") as response:
        entry = (await response.json())["data"][0]
    assert entry["audio"] is True and entry["audio_sample_rate"] == RATE and entry["family"] == "ltx2"


async def test_silence_on_request_gives_no_audio_stream(sound_client) -> None:
    client, _ = sound_client
    video = await client.videos.create_and_poll(
        prompt="a quiet lake", seconds="1", extra_body={"sound": False}, poll_interval_ms=50
    )
    assert video.status == "completed", video.error
    assert video.model_extra["has_audio"] is False
    assert streams_of((await client.videos.download_content(video.id)).read())["audio"] is None


async def test_an_extension_continues_the_sound_without_a_gap_at_the_seam(sound_client) -> None:
    client, run = sound_client
    parent = await client.videos.create_and_poll(prompt="a train approaches", seconds="2", poll_interval_ms=50)
    child = await client.videos.extend(
        prompt="it passes by", seconds="1", video=openai.omit, extra_body={"video": {"id": parent.id}}
    )
    child = await poll(client, child.id)
    assert child.status == "completed", child.error
    assert child.model_extra["has_audio"] is True
    data = (await client.videos.download_content(child.id)).read()
    facts = streams_of(data)
    assert facts["video_frames"] == 3 * FPS and facts["audio_seconds"] == facts["video_seconds"] == Fraction(3)
    assert abs(decoded_samples(data) - 3 * RATE) <= audio.AAC_FRAME

    before, whole = stored_sound(run, parent.id), stored_sound(run, child.id)
    seam = 2 * RATE
    assert len(whole) == 3 * RATE  # the parent's samples and the new part's, none lost or doubled
    fade = round(audio.CROSSFADE_SECONDS * RATE)
    # The parent's sound is kept as it was (losslessly) up to the crossfade that ends at the seam.
    assert np.array_equal(whole.samples[:, : seam - fade], before.samples[:, : seam - fade])
    jump, inner = seam_jump(whole.samples, seam)
    assert jump <= inner
    assert np.abs(whole.samples[:, seam : seam + 800]).max() > 0  # the new part has sound from its first sample


async def test_the_byte_cap_holds_the_video_and_its_sound(sound_client) -> None:
    client, _ = sound_client
    cap = 65536
    video = await client.videos.create_and_poll(
        prompt="detailed noise", seconds="2", size="256x256", extra_body={"max_bytes": cap}, poll_interval_ms=50
    )
    assert video.status == "completed", video.error
    data = (await client.videos.download_content(video.id)).read()
    assert len(data) <= cap
    facts = streams_of(data)
    assert facts["audio"] == "aac" and facts["audio_seconds"] == Fraction(2)


async def test_a_model_without_sound_still_gives_silent_clips(tmp_path: Path) -> None:
    async with running_generator(tmp_path / "generator") as run, sdk_client(run) as client:
        video = await client.videos.create_and_poll(prompt="a cat", seconds="1", poll_interval_ms=50)
        assert video.status == "completed", video.error
        assert video.model_extra["has_audio"] is False
        assert streams_of((await client.videos.download_content(video.id)).read())["audio"] is None
        async with aiohttp.ClientSession() as session, session.get(f"{run.base_url}/models") as response:
            assert (await response.json())["data"][0]["audio"] is False
