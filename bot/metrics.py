"""The bot's Prometheus metrics: requests by kind, refusals by reason, LLM latency and fallbacks, deliveries by
outcome; served on their own small HTTP server (`HANUL_METRICS_PORT`, off by default) at `/metrics`.

The bot serves its own metrics even when it runs the generator in-process: the generator's port belongs to the
generator (the same API, key and metrics whether it is embedded or on another host), and a bot talking to a
generator elsewhere (GENERATOR_URL) has no generator port to borrow. So Prometheus scrapes two targets, each
with one registry of its own (never prometheus_client's global one: two apps in one process must not collide).
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

LLM_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class BotMetrics:
    """The metrics of one bot (or console) process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "hanul_bot_requests",
            "Video requests by kind (new, refine, extend, reroll, rerun, smaller, edit), refused ones included.",
            ["kind"],
            registry=registry,
        )
        self.refusals = Counter(
            "hanul_bot_refusals", "Requests refused, by reason (the refusal's code).", ["reason"], registry=registry
        )
        self.llm_seconds = Histogram(
            "hanul_bot_llm_seconds",
            "Time of one prompt-writing LLM call (retries and one repair included), by task and outcome.",
            ["task", "outcome"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.llm_fallbacks = Counter(
            "hanul_bot_llm_fallbacks",
            "Prompts written offline instead of by the LLM, by reason (not_configured, timeout, unavailable, invalid).",
            ["reason"],
            registry=registry,
        )
        self.deliveries = Counter(
            "hanul_bot_deliveries",
            "Generations seen through on Discord, by outcome (posted, too_big, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(metrics: BotMetrics, host: str, port: int) -> web.AppRunner:
    """Start `/metrics` on host:port (0: a free port; `runner.addresses` says which); stop with `runner.cleanup()`."""

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("bot metrics on http://%s:%s/metrics", *runner.addresses[0][:2])
    return runner
