"""How long and how often the bot tries again when something it depends on is away: the generator (down,
restarting) or Discord (429, 5xx, a dropped connection). Delays grow exponentially with jitter up to a cap;
after `give_up_after` seconds of trouble the request is reported as failed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


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
