"""Start the real HanulBot against the fake Discord and the real in-process generator (tiny model)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bot.app import HanulBot
from bot.retry import Backoff
from tests.support.discord_fake import FakeDiscord, guild_payload
from tests.support.hanul import bot_settings, tiny_generator_settings

# Retries in tests come quickly, so a test of a generator or Discord outage takes a second, not minutes.
FAST_BACKOFF = Backoff(base=0.1, cap=0.4, give_up_after=30.0)


@contextlib.asynccontextmanager
async def running_bot(
    data_dir: Path,
    monkeypatch: Any,
    fake: FakeDiscord | None = None,
    *,
    token: str = "test-token",
    backoff: Backoff | None = FAST_BACKOFF,  # None: the settings decide (HANUL_RETRY_MINUTES)
    generator: dict[str, object] | None = None,
    **settings: object,
) -> AsyncIterator[tuple[HanulBot, FakeDiscord]]:
    """Log in (REST: /users/@me, the application, command sync), receive GUILD_CREATE, then hand over.
    `settings` are BotSettings variables (GENERATOR_URL set: no in-process generator); `generator` overrides
    the in-process generator's."""
    fake = fake or FakeDiscord()
    bot = HanulBot(
        bot_settings(data_dir, **settings),
        generator_settings=tiny_generator_settings(data_dir, **(generator or {})),
        poll_interval=0.05,
        backoff=backoff,
    )
    fake.install(bot, monkeypatch)
    try:
        await bot.login(token)
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
