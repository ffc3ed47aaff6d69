"""Edits, characters and files through the unmodified openai SDK (issue 18), on the tiny model: what each request
makes the pipeline receive, what comes back, and the errors for bad input."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
import torch
from diffusers import LTXConditionPipeline
from openai.types import FileObject
from openai.types.video import Video
from openai.types.video_get_character_response import VideoGetCharacterResponse
from PIL import Image

from generator.characters import centring, choose_reference_frames, sharpness
from tests.support.generator_service import poll, probe_mp4

FPS = 8  # the tiny model's frame rate


@pytest.fixture
def pipeline_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every LTXConditionPipeline call (the tiny model's), recorded at its call seam."""
    calls: list[dict[str, Any]] = []
    call = LTXConditionPipeline.__call__

    def recorded(self, *args, **kwargs):
        calls.append(kwargs)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(LTXConditionPipeline, "__call__", recorded)
    return calls


def png(colour=(200, 40, 40), size=(96, 64), detail: bool = False) -> bytes:
    pixels = np.full((size[1], size[0], 3), colour, np.uint8)
    if detail:  # a checkered square in the middle: sharp detail, centred
        y, x = size[1] // 4, size[0] // 4
        block = (np.indices((size[1] // 2, size[0] // 2)).sum(axis=0) % 2 * 255).astype(np.uint8)
        pixels[y : y + size[1] // 2, x : x + size[0] // 2] = block[..., None]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def mp4(frames: np.ndarray, fps: int = FPS) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


async def edit(client: openai.AsyncOpenAI, source_id: str, prompt: str, **extra: Any) -> Video:
    """`videos.edit` as it works with openai-python 3.60: like `extend`, it refuses `video={"id": …}` client-side,
    so the reference travels in extra_body (as the form field video[id])."""
    return await client.videos.edit(prompt=prompt, video=openai.omit, extra_body={"video": {"id": source_id}, **extra})


async def raw_video(client: openai.AsyncOpenAI, video_id: str) -> dict[str, Any]:
    response = await client.videos.with_raw_response.retrieve(video_id)
    return response.http_response.json()


async def frames_of(client: openai.AsyncOpenAI, video_id: str) -> np.ndarray:
    return probe_mp4((await client.videos.download_content(video_id)).read())["frames"]


# --- part 3: parity with the spec ------------------------------------------------------------------


async def test_size_is_the_one_asked_and_the_rendered_one_an_extra_field(client):
    asked = await client.videos.create_and_poll(
        prompt="a lighthouse", size="1280x720", seconds="1", poll_interval_ms=50
    )
    raw = await raw_video(client, asked.id)
    assert raw["size"] == "1280x720" and raw["rendered_size"] == "96x64"
    Video.model_validate(raw)  # the SDK's own model accepts it (a rendered size is not one of the spec's)

    default = await poll(client, (await client.videos.create(prompt="a lighthouse", seconds="1")).id)
    raw = await raw_video(client, default.id)
    assert raw["size"] == "720x1280" and raw["rendered_size"] == "64x96"  # the spec's default: portrait
    Video.model_validate(raw)
    listed = (await client.videos.with_raw_response.list()).http_response.json()
    for video in listed["data"]:
        Video.model_validate(video)


async def test_a_prompt_of_32000_characters_is_taken_and_what_the_encoder_cannot_take_is_reported(client):
    prompt = ("a red fox runs through deep snow " * 1000)[:31_999] + "."
    video = await poll(client, (await client.videos.create(prompt=prompt, seconds="1")).id)
    assert video.status == "completed" and video.prompt == prompt
    extra = video.model_extra
    assert extra["prompt_truncated"] is True
    assert 0 < extra["prompt_tokens_used"] < extra["prompt_tokens"]

    short = await poll(client, (await client.videos.create(prompt="a fox", seconds="1")).id)
    assert short.model_extra["prompt_truncated"] is False

    with pytest.raises(openai.BadRequestError) as refused:
        await client.videos.create(prompt="x" * 32_001, seconds="1")
    assert refused.value.body["param"] == "prompt"


async def test_listing_with_limit_zero_lists_nothing_and_says_whether_there_is_more(client):
    empty = (await client.videos.with_raw_response.list(limit=0)).http_response.json()
    assert empty["data"] == [] and empty["has_more"] is False
    await client.videos.create(prompt="one", seconds="1")
    some = (await client.videos.with_raw_response.list(limit=0)).http_response.json()
    assert some["data"] == [] and some["has_more"] is True


async def test_every_answer_carries_a_request_id_that_its_log_lines_carry_too(client, caplog):
    caplog.set_level("INFO", logger="generator.videos")
    created = await client.videos.with_raw_response.create(prompt="a kite", seconds="1")
    request_id = created.headers["x-request-id"]
    assert request_id.startswith("req_")
    queued = [record for record in caplog.records if record.getMessage().startswith("queued ")]
    assert [record.request_id for record in queued] == [request_id]

    with pytest.raises(openai.NotFoundError) as missing:
        await client.videos.retrieve("video_" + "0" * 32)
    assert missing.value.response.headers["x-request-id"].startswith("req_")
    assert missing.value.response.headers["x-request-id"] != request_id


# --- the Files API and input_reference by file_id ---------------------------------------------------


async def test_a_file_uploaded_through_the_files_api_serves_as_input_reference(client, pipeline_calls):
    uploaded = await client.files.create(file=("start.png", png(), "image/png"), purpose="vision")
    assert isinstance(uploaded, FileObject) and uploaded.filename == "start.png" and uploaded.bytes == len(png())
    assert (await client.files.retrieve(uploaded.id)).id == uploaded.id
    assert [f.id async for f in client.files.list()] == [uploaded.id]
    assert (await client.files.content(uploaded.id)).read() == png()

    # openai-python 3.60 refuses a dict for `input_reference` client-side (it expects a file there), as it does for
    # `video` in extend: the reference travels in extra_body, as the form field input_reference[file_id].
    reference = {"input_reference": {"file_id": uploaded.id}}
    video = await poll(client, (await client.videos.create(prompt="a red card", seconds="1", extra_body=reference)).id)
    assert video.status == "completed"
    (condition,) = pipeline_calls[-1]["conditions"]  # the image, as the first frame
    assert condition.frame_index == 0 and condition.image is not None
    assert condition.image[0].mean().item() == pytest.approx(200 / 255, abs=0.02)  # red, as uploaded

    deleted = await client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError) as gone:
        await client.post("/videos", body={"prompt": "a red card", **reference}, cast_to=Video)  # the spec's JSON
    assert gone.value.body["param"] == "input_reference"


async def test_the_files_api_refuses_an_unknown_purpose_and_a_missing_file(client):
    with pytest.raises(openai.BadRequestError) as purpose:
        await client.files.create(file=("a.png", png(), "image/png"), purpose="wallpaper")  # type: ignore[arg-type]
    assert purpose.value.body["param"] == "purpose"
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve("file-" + "0" * 32)


# --- edits -----------------------------------------------------------------------------------------


async def test_an_edit_re_renders_the_source_keeping_its_length_size_and_fps(client, pipeline_calls):
    source = await client.videos.create_and_poll(
        prompt="a street by day", size="1280x720", seconds="3", poll_interval_ms=50
    )
    source_frames = await frames_of(client, source.id)
    pipeline_calls.clear()

    edited = await poll(client, (await edit(client, source.id, "the same street at night")).id)

    assert edited.status == "completed"
    raw = await raw_video(client, edited.id)
    Video.model_validate(raw)
    assert (edited.seconds, edited.size, raw["rendered_size"], raw["fps"]) == ("3", "1280x720", "96x64", FPS)
    assert raw["kind"] == "edit" and raw["parent_video_id"] == source.id and raw["strength"] == 0.6
    assert len(await frames_of(client, edited.id)) == len(source_frames) == 3 * FPS
    # 24 frames on a model that renders 17 at most: two calls, each starting from its stretch of the source's latents
    # at the edit's strength; the second continues from the first's edited frames.
    assert len(pipeline_calls) == 2
    for call in pipeline_calls:
        assert call["denoise_strength"] == 0.6
        assert call["latents"].shape[2:] == (3, 2, 3)  # 17 frames of 96×64 in LTX's latent space
    assert not torch.equal(pipeline_calls[0]["latents"], pipeline_calls[1]["latents"])  # each its own stretch
    assert pipeline_calls[0]["conditions"] is None
    (context,) = pipeline_calls[1]["conditions"]
    assert context.frame_index == 0 and context.video.shape[0] == 9


async def test_an_edit_starts_from_the_source_frames_the_generator_kept(client, tiny_generator, monkeypatch):
    """The source's last frames come from its lossless tail, not from its MP4's lossy copy of them."""
    from generator import render
    from generator.media import tails

    seen: list[np.ndarray] = []
    window = render._source_window
    monkeypatch.setattr(render, "_source_window", lambda source, *a: (seen.append(source), window(source, *a))[1])
    source = await client.videos.create_and_poll(prompt="waves", seconds="2", poll_interval_ms=50)
    service = tiny_generator.service
    (tail_row,) = [row for row in await service.queue.artifacts_of(source.id) if row.kind == "tail"]
    tail = tails.load_tail(service.store.resolve(tail_row.path))

    edited = await poll(client, (await edit(client, source.id, "waves, in watercolour")).id)

    assert edited.status == "completed"
    edit_source = next(frames for frames in seen if frames is not None)
    decoded = await frames_of(client, source.id)
    assert edit_source.shape == decoded.shape == (2 * FPS, 96, 64, 3)  # the default size: portrait
    assert np.array_equal(edit_source[-len(tail) :], tail)
    assert not np.array_equal(decoded[-len(tail) :], tail)  # what the MP4 would have given instead
    assert np.abs(edit_source[: -len(tail)].astype(int) - decoded[: -len(tail)]).mean() < 2  # the rest: the MP4


async def test_an_uploaded_clip_can_be_edited_with_a_chosen_strength(client, pipeline_calls):
    clip = np.random.default_rng(3).integers(0, 255, (17, 64, 96, 3), dtype=np.uint8)
    edited = await client.videos.edit(
        prompt="in the style of an old film",
        video=("clip.mp4", mp4(clip), "video/mp4"),
        extra_body={"strength": 0.3},
    )
    edited = await poll(client, edited.id)
    assert edited.status == "completed" and edited.size == "96x64"
    assert pipeline_calls[-1]["denoise_strength"] == 0.3
    assert len(await frames_of(client, edited.id)) == 17


async def test_bad_edits_are_refused_with_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as unknown:
        await edit(client, "video_" + "0" * 32, "night")
    assert unknown.value.body["param"] == "video_id"

    with pytest.raises(openai.BadRequestError) as wrong_type:
        await client.videos.edit(prompt="night", video=("notes.txt", b"not a video at all", "text/plain"))
    assert wrong_type.value.body["param"] == "video"

    with pytest.raises(openai.BadRequestError) as strength:
        await edit(client, "video_" + "0" * 32, "night", strength=1.5)
    assert strength.value.body["param"] == "strength"


async def test_an_unfinished_source_cannot_be_edited(tmp_path):
    from tests.support.generator_service import HeldRenders, running_generator, sdk_client, tiny_backend

    backend = HeldRenders(tiny_backend())
    async with running_generator(tmp_path, backend) as running, sdk_client(running) as client:
        try:
            source = await client.videos.create(prompt="a slow one", seconds="1")
            with pytest.raises(openai.BadRequestError) as refused:
                await edit(client, source.id, "night")
            assert refused.value.body["code"] == "video_not_ready"
        finally:
            backend.release.set()


# --- characters ------------------------------------------------------------------------------------


async def test_a_character_made_from_a_clip_keeps_sharp_centred_frames(client, tiny_generator):
    rng = np.random.default_rng(7)
    frames = np.full((24, 64, 96, 3), 120, np.uint8)
    frames[5, 16:48, 24:72] = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)  # sharp detail in the middle
    frames[18, :, :24] = rng.integers(0, 255, (64, 24, 3), dtype=np.uint8)  # detail at the edge only

    made = await client.videos.create_character(name="Mina", video=("mina.mp4", mp4(frames), "video/mp4"))

    assert made.name == "Mina" and made.id.startswith("char_")
    fetched = await client.videos.get_character(made.id)
    assert isinstance(fetched, VideoGetCharacterResponse) and fetched.name == "Mina"
    assert fetched.model_extra["source"] == "video" and fetched.model_extra["reference_frames"] == 3
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{tiny_generator.base_url}/videos/characters/{made.id}/content") as best:
            assert best.headers["content-type"] == "image/png"
            data = await best.read()
    with Image.open(io.BytesIO(data)) as image:
        picture = np.asarray(image.convert("RGB"))
    # The best frame is the one with sharp detail in the middle (frame 5), as stored: not blurred by encoding much.
    assert np.abs(picture.astype(int) - frames[5]).mean() < np.abs(picture.astype(int) - frames[18]).mean()


def test_the_frame_chooser_prefers_sharp_centred_frames_spread_over_the_clip():
    rng = np.random.default_rng(1)
    flat = np.full((64, 96, 3), 128, np.uint8)
    centred = flat.copy()
    centred[16:48, 24:72] = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    edge = flat.copy()
    edge[:, :20] = rng.integers(0, 255, (64, 20, 3), dtype=np.uint8)
    blurred = np.asarray(Image.fromarray(centred).resize((24, 16)).resize((96, 64), Image.Resampling.BILINEAR))
    assert sharpness(centred) > sharpness(blurred) and centring(centred) > 0.5 > centring(edge)

    clip = [flat] * 12
    clip[2], clip[3], clip[9] = centred, centred.copy(), blurred
    chosen = choose_reference_frames(clip, 2)
    assert chosen[0] in (2, 3) and chosen[1] == 9  # the best, then the next best that is not right beside it


async def test_characters_are_listed_per_user_and_deleted(client, tiny_generator):
    image = ("face.png", png(detail=True), "image/png")
    mine = await client.videos.create_character(name="Mina", video=image, extra_body={"user": "member-1"})
    theirs = await client.videos.create_character(name="Joon", video=image, extra_body={"user": "member-2"})
    assert (await client.videos.get_character(mine.id)).model_extra["source"] == "image"

    url = f"{tiny_generator.base_url}/videos/characters"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"user": "member-1"}) as answer:
            body = await answer.json()
        assert body["object"] == "list" and [c["id"] for c in body["data"]] == [mine.id]
        assert body["data"][0]["user"] == "member-1"
        async with http.get(url, params={"order": "asc"}) as answer:
            assert [c["id"] for c in (await answer.json())["data"]] == [mine.id, theirs.id]
        async with http.delete(f"{url}/{theirs.id}") as answer:
            deleted = await answer.json()
    assert deleted == {"id": theirs.id, "object": "character.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        await client.videos.get_character(theirs.id)


async def test_a_render_naming_a_character_is_conditioned_on_its_reference_frames(client, pipeline_calls):
    character = await client.videos.create_character(name="Mina", video=("mina.png", png((30, 200, 60)), "image/png"))

    video = await poll(
        client,
        (await client.videos.create(prompt="Mina waves", seconds="2", extra_body={"characters": [character.id]})).id,
    )

    assert video.status == "completed" and video.model_extra["characters"] == [character.id]
    (condition,) = pipeline_calls[-1]["conditions"]
    # Part-way through the clip and below full strength: the first frame is not frozen to the reference.
    assert condition.frame_index > 0 and 0 < condition.strength < 1
    green = condition.image[1].mean().item()
    assert green == pytest.approx(200 / 255, abs=0.02)

    # A remix keeps the character; an edit can name one too.
    remix = await poll(client, (await client.videos.remix(video.id, prompt="Mina jumps")).id)
    assert remix.model_extra["characters"] == [character.id]
    assert len(pipeline_calls[-1]["conditions"]) == 1


async def test_the_wan_vace_pipeline_receives_characters_as_reference_images(tiny_wan, monkeypatch):
    from diffusers import WanVACEPipeline

    from generator.pipelines.base import RenderRequest

    calls: list[dict[str, Any]] = []
    call = WanVACEPipeline.__call__
    monkeypatch.setattr(WanVACEPipeline, "__call__", lambda self, **kw: (calls.append(kw), call(self, **kw))[1])
    reference = np.zeros((64, 96, 3), np.uint8)
    reference[..., 2] = 220
    source = np.random.default_rng(2).integers(0, 255, (17, 64, 96, 3), dtype=np.uint8)

    frames = tiny_wan.render(
        RenderRequest(
            prompt="a blue figure",
            width=96,
            height=64,
            num_frames=17,
            seed=1,
            num_inference_steps=2,
            guidance_scale=1.0,
            source=source,
            strength=0.75,
            references=(reference,),
        )
    )

    assert frames.shape == (17, 64, 96, 3)  # the reference image's latent frame is not part of the clip
    (image,) = calls[0]["reference_images"]
    assert np.array_equal(np.asarray(image), reference)
    # The edit's source is VACE's context video, all of it to regenerate, weighed by the edit's strength.
    assert torch.equal(calls[0]["mask"], torch.ones_like(calls[0]["mask"]))
    expected = torch.from_numpy(source).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(calls[0]["video"][0].cpu(), expected)
    assert calls[0]["conditioning_scale"] == pytest.approx(0.5)


def test_plain_wan_edits_through_diffusers_video_to_video(monkeypatch):
    from diffusers import WanVideoToVideoPipeline

    from generator.pipelines.base import RenderRequest
    from generator.pipelines.tiny import build_tiny_wan_pipeline
    from generator.pipelines.wan import WanBackend, wan_profile

    pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")
    calls: list[dict[str, Any]] = []
    call = WanVideoToVideoPipeline.__call__
    monkeypatch.setattr(WanVideoToVideoPipeline, "__call__", lambda self, **kw: (calls.append(kw), call(self, **kw))[1])
    pipeline = build_tiny_wan_pipeline(vace=False)
    backend = WanBackend(pipeline, wan_profile("tiny", pipeline))
    source = np.random.default_rng(4).integers(0, 255, (17, 64, 96, 3), dtype=np.uint8)

    frames = backend.render(
        RenderRequest(
            "dusk", 96, 64, 17, seed=1, num_inference_steps=4, guidance_scale=1.0, source=source, strength=0.5
        )
    )

    assert backend.profile.supports_edit and frames.shape == (17, 64, 96, 3)
    assert calls[0]["strength"] == 0.5 and calls[0]["video"].shape == (17, 3, 64, 96)
    assert backend.video_to_video().transformer is pipeline.transformer  # the same weights, not a second copy


async def test_bad_character_requests_get_clear_errors(client):
    with pytest.raises(openai.BadRequestError) as wrong_type:
        await client.videos.create_character(name="Mina", video=("mina.txt", b"hello there", "text/plain"))
    assert wrong_type.value.body["param"] == "video"

    with pytest.raises(openai.NotFoundError) as unknown:
        await client.videos.create(prompt="Mina", extra_body={"characters": ["char_" + "0" * 32]})
    assert unknown.value.body["param"] == "characters"

    one = await client.videos.create_character(name="A", video=("a.png", png(), "image/png"))
    with pytest.raises(openai.BadRequestError) as too_many:
        await client.videos.create(prompt="crowd", extra_body={"characters": [one.id] * 3})
    assert too_many.value.body["param"] == "characters"
    # Nothing was queued by the refused requests.
    assert (await client.videos.with_raw_response.list(limit=0)).http_response.json()["has_more"] is False
