"""The bot's `/metrics` on HANUL_METRICS_PORT, read with prometheus_client's own parser."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hanul_bot import running_bot, wait_until


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_bot_counts_requests_refusals_fallbacks_and_deliveries(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch, HANUL_METRICS_PORT=0) as (bot, fake):
        port = bot.runtime.metrics_server.addresses[0][1]
        before = await scrape(port)
        assert ("hanul_bot_requests_total", (("kind", "new"),)) not in before
        fake.slash("video", {"prompt": "a cat surfing at sunset"})
        fake.slash("video", {"prompt": "a dog", "seconds": 999.0})  # refused: longer than HANUL_MAX_SECONDS
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        after = await scrape(port)
    assert after[("hanul_bot_requests_total", (("kind", "new"),))] == 2
    assert after[("hanul_bot_refusals_total", (("reason", "seconds"),))] == 1
    assert after[("hanul_bot_llm_fallbacks_total", (("reason", "not_configured"),))] == 1  # no LLM set up
    assert after[("hanul_bot_deliveries_total", (("outcome", "posted"),))] == 1
