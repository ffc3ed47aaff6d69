"""Clips with sound, on the bot's side (issue 21): it learns from /v1/models that the model has sound, writes the
sound into the prompt the way LTX-2 wants it, asks for silence when the member does, and says so in the console."""

from __future__ import annotations

import io

from bot.console import run_console
from bot.director.styles import style_for
from bot.videos import GeneratorModel, VideoClient, VideoOrder
from tests.support.generator_service import running_generator, tiny_sound_backend
from tests.support.hanul import bot_settings, tiny_generator_settings


def test_the_listing_says_whether_the_model_has_sound() -> None:
    entry = {"id": "ltx2.3-distilled", "family": "ltx2", "native_sizes": {"landscape": "768x512"}}
    assert GeneratorModel.from_listing([entry | {"audio": True}]).has_sound
    assert not GeneratorModel.from_listing([entry]).has_sound  # an older generator: silent clips


def test_the_ltx2_style_asks_for_ambience_dialogue_in_quotes_and_music() -> None:
    guide = style_for("ltx2").guide
    assert "sound" in guide and "quotation marks" in guide and "music" in guide
    assert "no sound" in style_for("ltx").guide  # silent models are still told to describe only what is seen


async def test_the_client_orders_sound_or_silence_and_sees_which_it_got(tmp_path) -> None:
    async with running_generator(tmp_path, tiny_sound_backend(), GENERATOR_MODEL="tiny-sound") as running:
        client = VideoClient(running.base_url)
        try:
            model = await client.model()
            assert model.has_sound and model.family == "ltx2"
            heard = await client.create(VideoOrder(prompt="a bell rings", seconds=1, size="96x64"))
            quiet = await client.create(VideoOrder(prompt="a bell rings", seconds=1, size="96x64", sound=False))
            heard = await client.track(heard.id, _ignore, poll_interval=0.05)
            quiet = await client.track(quiet.id, _ignore, poll_interval=0.05)
            assert heard.status == quiet.status == "completed"
            assert heard.has_audio and not quiet.has_audio
        finally:
            await client.close()


async def _ignore(_state) -> None:
    return None


def test_the_console_says_the_clip_has_sound(tmp_path) -> None:
    out = io.StringIO()
    data = tmp_path / "data"
    code = run_console(
        bot_settings(data),
        stdin=io.StringIO("a bell rings in a quiet temple\n"),
        stdout=out,
        generator_settings=tiny_generator_settings(data, GENERATOR_MODEL="tiny-sound"),
    )
    assert code == 0
    assert "Saved, with sound: " in out.getvalue()


# --- Discord -----------------------------------------------------------------------------------------------------


def has_audio_stream(mp4: bytes) -> bool:
    import av

    with av.open(io.BytesIO(mp4)) as container:
        return bool(container.streams.audio)


async def test_discord_posts_clips_with_sound_and_silence_by_option_or_setting(tmp_path, monkeypatch) -> None:
    from tests.support.discord_fake import EPHEMERAL
    from tests.support.hanul_bot import running_bot, wait_until

    async with running_bot(tmp_path / "data", monkeypatch, generator={"GENERATOR_MODEL": "tiny-sound"}) as (bot, fake):
        video = next(c for c in fake.find("PUT", "/commands")[0].json if c["name"] == "video")
        assert "sound" in {option["name"] for option in video["options"]}

        async def clip(options: dict) -> bytes:
            before = len(fake.clips())
            fake.slash("video", {"prompt": "a bell rings in a temple", "seconds": 1.0, **options})
            await wait_until(lambda: len(fake.clips()) > before)
            ((name, data),) = fake.clips()[-1].files.items()
            assert name.endswith(".mp4")
            return data

        assert has_audio_stream(await clip({}))  # the MP4 is posted as it is, sound and all
        assert not has_audio_stream(await clip({"sound": False}))

        fake.slash("settings", {"sound": False})
        answer = await fake.wait_for("POST", "/webhooks/", lambda c: "Saved." in (c.content or ""))
        assert "Sound: off" in answer.content and answer.json["flags"] & EPHEMERAL
        assert not has_audio_stream(await clip({}))  # the member's default now
        assert has_audio_stream(await clip({"sound": True}))  # the option wins over the default
        records = await bot.studio.store.history(1001)
        assert [record.params["has_audio"] for record in reversed(records)] == [True, False, False, True]
