"""How long and how often the bot tries again when something it depends on is away: the generator (down,
restarting) or Discord (429, 5xx, a dropped connection). Delays grow exponentially with jitter up to a cap;
after `give_up_after` seconds of trouble the request is reported as failed. `retrying` is the one retry loop."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: base, 2·base, 4·base … capped at `cap`, each delay in [d/2, d]."""

    base: float = 2.0
    cap: float = 60.0
    give_up_after: float = 3600.0

    def delays(self) -> Iterator[float]:
        delay = self.base
        while True:
            yield delay / 2 + random.uniform(0, delay / 2)
            delay = min(self.cap, delay * 2)


DEFAULT_BACKOFF = Backoff()


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    passes: Callable[[Exception], bool],
    on_retry: Callable[[Exception, float], Awaitable[None]] | None = None,
) -> T:
    """`call()`, again and again with backoff while what it raises `passes` (trouble that goes away: a restart, a
    rate limit, a dropped connection); anything else, or trouble lasting `backoff.give_up_after` seconds from the
    first failure, is raised. `on_retry` hears of each failure and the delay before the next try."""
    started: float | None = None
    delays = backoff.delays()
    while True:
        try:
            return await call()
        except Exception as error:
            if not passes(error):
                raise
            now = time.monotonic()
            started = now if started is None else started
            if now - started >= backoff.give_up_after:
                raise
            delay = next(delays)
            if on_retry is not None:
                await on_retry(error, delay)
            await asyncio.sleep(delay)
