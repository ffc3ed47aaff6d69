"""The bot follows the generator's model: prompts in its family's style, sizes its native ones (`GET /v1/models`)."""

from __future__ import annotations

import pytest

from bot.director import Director
from bot.director.styles import LTX, WAN
from bot.videos import GeneratorError, GeneratorModel, VideoClient
from tests.support.generator_service import running_generator
from tests.support.hanul import bot_settings
from tests.support.hanul_bot import running_bot, wait_until


async def test_the_client_learns_the_model_family_and_native_sizes(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_MODEL="wan2.2-5b") as running:
        client = VideoClient(running.base_url)
        try:
            model = await client.model()
        finally:
            await client.close()
    assert model == GeneratorModel(
        id="wan2.2-5b",
        family="wan",
        native_sizes={"landscape": "1280x704", "portrait": "704x1280", "square": "960x960"},
    )
    assert model.size_for("9:16") == "704x1280"


def test_a_model_list_without_a_known_family_is_refused_and_bad_sizes_are_dropped():
    with pytest.raises(GeneratorError) as raised:
        GeneratorModel.from_listing([{"id": "x", "family": "sdxl"}])
    assert raised.value.code == "generator_invalid"
    with pytest.raises(GeneratorError):
        GeneratorModel.from_listing(["<html>"])
    model = GeneratorModel.from_listing(
        [{"id": "m", "family": "ltx", "native_sizes": {"landscape": "768x512", "portrait": "huge", "odd": "1x1"}}]
    )
    assert model.native_sizes == {"landscape": "768x512"}
    assert model.size_for("9:16") == "720x1280", "an orientation the model does not name: the generic size"


def test_the_director_writes_in_the_style_of_the_family_it_is_told(tmp_path):
    director = Director(bot_settings(tmp_path))
    assert director.style is LTX
    director.follow_model("wan")
    assert director.style is WAN


async def test_a_video_request_uses_the_generators_family_and_native_size(tmp_path, monkeypatch):
    generator = {"GENERATOR_MODEL_FAMILY": "wan"}
    async with running_bot(tmp_path / "data", monkeypatch, generator=generator) as (bot, fake):
        fake.slash("video", {"prompt": "a paper boat on a river"})
        await fake.wait_for("POST", "/threads", lambda c: "paper boat" in c.json["name"])
        await wait_until(lambda: bot.studio.director.style is WAN)
        await bot.deliveries.wait_idle()
        (record,) = await bot.studio.store.history(1001)
    assert record.params["size"] == "96x64"  # the tiny model's native landscape size, not a generic 1280x720
