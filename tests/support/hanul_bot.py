"""Start the real HanulBot against the fake Discord and the real in-process generator (tiny model)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bot.app import HanulBot
from tests.support.discord_fake import FakeDiscord, guild_payload
from tests.support.hanul import bot_settings, tiny_generator_settings


@contextlib.asynccontextmanager
async def running_bot(
    data_dir: Path, monkeypatch: Any, fake: FakeDiscord | None = None, **settings: object
) -> AsyncIterator[tuple[HanulBot, FakeDiscord]]:
    """Log in (REST: /users/@me, the application, command sync), receive GUILD_CREATE, then hand over."""
    fake = fake or FakeDiscord()
    bot = HanulBot(
        bot_settings(data_dir, **settings),
        generator_settings=tiny_generator_settings(data_dir),
        poll_interval=0.05,
    )
    fake.install(bot, monkeypatch)
    try:
        await bot.login("test-token")
        fake.feed("GUILD_CREATE", guild_payload(roles=[555]))
        yield bot, fake
    finally:
        await bot.close()


async def wait_until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Let the bot work until `condition()` holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
