"""The status message shows a live preview of the render, with Cancel beside it, within the progress edits' rate;
the console's progress moves before the clip is saved."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from PIL import Image

import generator.pipelines
import generator.pipelines.describe
from bot.console import run_console
from tests.support.discord_fake import CHANNEL_ID
from tests.support.hanul import bot_settings, tiny_generator_settings
from tests.support.hanul_bot import running_bot


@pytest.fixture
def slow_tiny_model(monkeypatch):
    """The tiny model at 1500 denoising steps a segment: a render lasts seconds, long enough to watch."""
    slow = dataclasses.replace(generator.pipelines.TINY_LTX_PROFILE, default_steps=1500)
    monkeypatch.setattr(generator.pipelines, "TINY_LTX_PROFILE", slow)
    monkeypatch.setattr(generator.pipelines.describe, "TINY_LTX_PROFILE", slow)


async def test_the_status_message_shows_a_live_preview_with_cancel_beside_it(tmp_path, monkeypatch, slow_tiny_model):
    generator = {"GENERATOR_PREVIEW_SECONDS": 0.2}
    async with running_bot(tmp_path / "data", monkeypatch, generator=generator) as (bot, fake):
        fake.slash("video", {"prompt": "a cat surfing at sunset", "seconds": 1.0})
        await fake.wait_for("POST", f"/channels/{CHANNEL_ID}/messages")
        thread = await fake.wait_for("POST", "/threads")
        status_id = int(thread.path.split("/")[4])

        edit = await fake.wait_for("PATCH", f"/messages/{status_id}", lambda c: bool(c.files), within=60)
        ((name, data),) = edit.files.items()
        assert name.endswith(".webp") and len(data) <= 100 * 1024
        image = Image.open(io.BytesIO(data))
        assert image.format == "WEBP" and image.is_animated
        assert any(cid.startswith("hanul:cancel:") for cid in edit.custom_ids)  # Cancel beside the preview
        assert "rendering" in edit.content and "%" in edit.content
        assert [a["filename"] for a in fake.messages[status_id]["attachments"]] == [name]

        done = await fake.wait_for("PATCH", f"/messages/{status_id}", lambda c: "done" in c.content, within=120)
        assert done.payload["attachments"] == []  # the clip is in the thread: the preview goes
        assert fake.messages[status_id]["attachments"] == []
        await bot.deliveries.wait_idle()
        edits = fake.find("PATCH", f"/messages/{status_id}")
        previews = [e for e in edits if e.files]
        # Each preview edit is also a progress edit (HANUL_PROGRESS_INTERVAL's pace), and shows a new preview.
        assert all("rendering" in e.content for e in previews)
        assert len({bytes(next(iter(e.files.values()))) for e in previews}) == len(previews)  # each one new
        metrics = bot.runtime.metrics.exposition().decode()
        assert 'hanul_bot_deliveries_total{outcome="posted"} 1.0' in metrics
        assert 'hanul_bot_requests_total{kind="new"} 1.0' in metrics


def test_console_progress_moves_before_the_clip_is_saved(tmp_path, slow_tiny_model):
    out = io.StringIO()
    data = tmp_path / "data"
    code = run_console(
        bot_settings(data, HANUL_PROGRESS_INTERVAL=3),  # Discord's pace must not hold the terminal back
        stdin=io.StringIO("a cat surfing at sunset\n"),
        stdout=out,
        generator_settings=tiny_generator_settings(data),
    )
    assert code == 0
    lines = out.getvalue().splitlines()
    saved = next(i for i, line in enumerate(lines) if "Saved: " in line)
    shown = {int(m[1]) for line in lines[:saved] if (m := re.search(r"rendering \S+ (\d+)%", line))}
    assert 0 in shown and max(shown) > 0, lines  # at Discord's pace only 0 % showed before the clip was saved
