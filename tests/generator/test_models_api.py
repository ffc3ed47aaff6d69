"""What the generator says about its model: `GET /v1/models` (OpenAI's list shape, with family and native sizes),
`/healthz`, `python -m generator models`, and a short message instead of a start when the model is not here."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
import pytest

import generator.service
from generator.catalog import PRESETS
from generator.pipelines.tiny import build_tiny_like
from generator.service import start_generator
from tests.support.generator_service import generator_settings, running_generator, sdk_client, wait_until
from tests.support.hub_cache import fake_commit, put_in_cache


async def test_the_model_list_names_the_model_its_family_and_native_sizes(client):
    models = await client.models.list()
    assert [model.id for model in models.data] == ["tiny"]
    tiny = models.data[0].model_dump()
    assert tiny["object"] == "model" and tiny["owned_by"] == "hanul"
    assert tiny["family"] == "ltx"
    assert tiny["native_sizes"] == {"landscape": "96x64", "portrait": "64x96", "square": "64x64"}
    assert tiny["fps"] == 8 and tiny["supports_extension"] is True


async def test_health_names_the_family_and_memory_tier(tiny_generator, client):
    await client.videos.create_and_poll(prompt="warm up", seconds="1", poll_interval_ms=50)
    async with aiohttp.ClientSession() as http:
        async with http.get(tiny_generator.base_url.replace("/v1", "/healthz")) as response:
            report = await response.json()
    assert report["family"] == "ltx"
    assert report["memory_tier"] == "full"


async def test_an_api_only_host_describes_a_preset_it_never_loads(tmp_path):
    """GENERATOR_WORKERS=0: no weights here, yet clients learn the model from the catalog."""
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_MODEL="wan2.2-5b") as running:
        async with sdk_client(running) as client:
            (model,) = (await client.models.list()).data
    described = model.model_dump()
    assert described["id"] == "wan2.2-5b" and described["family"] == "wan"
    assert described["native_sizes"]["landscape"] == "1280x704"
    assert described["fps"] == 24 and described["supports_image"] is False


async def test_a_service_whose_model_is_not_downloaded_does_not_start(tmp_path, hub_cache):
    settings = generator_settings(tmp_path, GENERATOR_MODEL="wan2.1-1.3b")
    try:
        await start_generator(settings)
    except Exception as error:
        assert "python -m generator download wan2.1-1.3b" in str(error)
    else:
        raise AssertionError("started without its model")


def run_generator(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GENERATOR_", "HANUL_", "HF_"))}
    clean.update(HANUL_DATA_DIR=str(tmp_path / "data"), HF_HUB_CACHE=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], capture_output=True, text=True, env=clean, timeout=120
    )


def test_serve_on_a_model_that_is_not_here_is_a_few_lines_naming_the_download(tmp_path):
    result = run_generator("serve", "--port", "0", tmp_path=tmp_path, GENERATOR_MODEL="wan2.2-5b")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in result.stderr
    assert "python -m generator download wan2.2-5b" in result.stderr
    message = result.stderr[result.stderr.index("hanul generator:") :]
    assert len(message.strip().splitlines()) <= 4


def test_generate_on_a_model_that_is_not_here_says_the_same(tmp_path):
    result = run_generator(
        "generate", "a cat", "-o", str(tmp_path / "cat.mp4"), tmp_path=tmp_path, GENERATOR_MODEL="ltx-13b-distilled"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "python -m generator download ltx-13b-distilled" in result.stderr
    assert not (tmp_path / "cat.mp4").exists()


def test_models_lists_every_preset_with_its_needs_and_what_is_here(tmp_path):
    cache = tmp_path / "hf"
    preset = PRESETS["wan2.1-1.3b"]
    folder = tmp_path / "saved"
    build_tiny_like(preset).save_pretrained(folder)
    put_in_cache(cache, preset.repo, folder, fake_commit("1.3b"))
    result = run_generator("models", tmp_path=tmp_path, GENERATOR_MODEL="wan2.1-1.3b")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line[:1].isalnum()}
    for name in PRESETS:
        assert name in rows
    assert rows["wan2.1-1.3b"].rstrip().endswith("yes") and "*" in rows["wan2.1-1.3b"]
    assert rows["wan2.2-5b"].rstrip().endswith("no")
    assert "GiB" in rows["ltx-13b-distilled"]
    ram = f"{PRESETS['wan2.2-a14b'].memory.host_ram_gib():.0f} GiB"
    assert ram in rows["wan2.2-a14b"] and "host RAM" in result.stdout, "what loading takes in host RAM, per preset"
    assert not (tmp_path / "data" / "models.lock.json").exists(), "listing locks nothing"
    assert "with GENERATOR_FP8=true" in result.stdout, "what FP8 changes about the tiers"


def test_download_of_tiny_or_a_folder_has_nothing_to_do(tmp_path):
    result = run_generator("download", "tiny", tmp_path=tmp_path)
    assert result.returncode == 0 and "nothing to download" in result.stdout


def test_download_offline_is_a_clear_message(tmp_path):
    result = run_generator("download", "wan2.2-5b", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "HF_HUB_OFFLINE" in result.stderr


async def test_a_generator_whose_model_failed_to_load_says_so_at_once(tmp_path, monkeypatch):
    """Every worker failed to load the model: requests get the 503 naming why without waiting for the model (the wait
    is for a model still loading; this one never will)."""
    monkeypatch.setattr(generator.service, "PROFILE_WAIT_SECONDS", 3600.0)  # a wait would outlast the test

    def broken(_settings):
        raise RuntimeError("the weights are missing")

    running = await start_generator(generator_settings(tmp_path), backend_factory=broken)
    try:
        async with sdk_client(running) as client:
            await wait_until(lambda: running.service.workers[0].status.state == "failed")
            for call in (client.models.list, lambda: client.videos.create(prompt="a kite", seconds="1")):
                with pytest.raises(openai.InternalServerError) as refused:
                    await asyncio.wait_for(call(), 30)
                assert refused.value.status_code == 503
                assert "could not be loaded: " in refused.value.message and "the weights are missing" in str(
                    refused.value
                )
    finally:
        await running.stop()
