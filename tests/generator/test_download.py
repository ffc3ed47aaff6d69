"""`python -m generator download` against a local stand-in for the Hugging Face hub (tests/support/fake_hub.py):
only the files the pipeline loads, a disk check first, resuming, the lock on the commit fetched, clear messages when
the hub cannot be reached, and a service that then loads exactly that commit with the hub gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import constants

from generator import hub as model_hub
from generator.catalog import PRESETS
from generator.hub import DownloadFailed, download_model, read_lock, resolve_model
from generator.pipelines import RenderRequest, load_backend
from generator.pipelines.tiny import build_tiny_like
from generator.settings import GeneratorSettings
from tests.support import fake_hub as fake_hub_support
from tests.support.fake_hub import FakeHub
from tests.support.hub_cache import preset_settings

fake_hub = fake_hub_support.fake_hub  # the fixtures
retry_waits = fake_hub_support.retry_waits
PRESET = PRESETS["wan2.1-1.3b"]
KiB = 1024


@pytest.fixture
def served(fake_hub: FakeHub, tmp_path: Path) -> Path:
    """A tiny pipeline shaped like the preset, served as its repo, with files a pipeline does not load beside it."""
    folder = tmp_path / "repo"
    build_tiny_like(PRESET).save_pretrained(folder)
    (folder / "README.md").write_text("# a model card")
    (folder / "examples").mkdir()
    (folder / "examples" / "demo.mp4").write_bytes(b"\0" * 4096)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    # Other weight formats beside the safetensors (their own bytes: the hub stores identical files once).
    (folder / "transformer" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(weights.read_bytes() + b"16")
    (folder / "transformer" / "diffusion_pytorch_model.bin").write_bytes(weights.read_bytes() + b"bin")
    fake_hub.add_repo(PRESET.repo, folder)
    return folder


def render_once(settings: GeneratorSettings):
    backend = load_backend(settings)
    request = RenderRequest(
        prompt="waves", width=32, height=32, num_frames=5, seed=1, num_inference_steps=2, guidance_scale=1.0
    )
    return backend, backend.render(request)


def test_download_locks_the_commit_and_the_service_then_loads_it_with_the_hub_gone(fake_hub, served, tmp_path):
    pytest.importorskip("ftfy")
    data = tmp_path / "data"
    source = download_model(PRESET.name, data, say=lambda line: None)
    commit = fake_hub.commit_of(PRESET.repo)
    assert source.revision == commit and source.folder.name == commit
    assert read_lock(data)[PRESET.repo] | {"downloaded_at": ""} == {
        "revision": commit,
        "preset": PRESET.name,
        "downloaded_at": "",
    }
    fake_hub.stop()
    backend, frames = render_once(preset_settings(PRESET.name, data))
    assert type(backend.pipeline).__name__ == PRESET.pipeline_class
    assert frames.shape == (5, 32, 32, 3)


def test_only_the_files_the_pipeline_loads_are_fetched(fake_hub, served, tmp_path):
    download_model(PRESET.name, tmp_path / "data", say=lambda line: None)
    fetched = {request.file for request in fake_hub.requests if request.method == "GET" and request.file}
    assert "transformer/diffusion_pytorch_model.safetensors" in fetched
    assert "tokenizer/tokenizer.json" in fetched and "model_index.json" in fetched
    for unwanted in (
        "README.md",
        "examples/demo.mp4",
        "transformer/diffusion_pytorch_model.bin",
        "transformer/diffusion_pytorch_model.fp16.safetensors",
    ):
        assert unwanted not in fetched


def test_the_plan_counts_what_is_still_to_fetch(fake_hub, served):
    plan = model_hub.plan_download(PRESET.repo, "main")
    assert plan.commit == fake_hub.commit_of(PRESET.repo)
    assert "transformer/diffusion_pytorch_model.safetensors" in plan.files
    assert "transformer/diffusion_pytorch_model.bin" not in plan.files and "README.md" not in plan.files
    assert plan.missing_bytes == sum(plan.files.values()) - plan.files["model_index.json"]  # the index is fetched


def test_a_connection_dropped_mid_file_resumes_where_it_broke(fake_hub, served, tmp_path, monkeypatch, retry_waits):
    # huggingface_hub resumes from the whole chunks on disk; small chunks let a small file show it.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * KiB)
    weights = "transformer/diffusion_pytorch_model.safetensors"
    fake_hub.drop_after(weights, 100 * KiB)
    source = download_model(PRESET.name, tmp_path / "data", say=lambda line: None)
    assert (source.folder / weights).read_bytes() == (served / weights).read_bytes()
    ranges = [request.range for request in fake_hub.requests_for(weights, method="GET")]
    assert ranges == [None, f"bytes={96 * KiB}-"]


def test_a_file_that_keeps_breaking_is_fetched_again_by_the_next_attempt(fake_hub, served, tmp_path, retry_waits):
    weights = "vae/diffusion_pytorch_model.safetensors"
    fake_hub.drop_after(weights, 0, times=6)  # the hub client's own retries (1 + 5) all fail
    source = download_model(PRESET.name, tmp_path / "data", say=lambda line: None)
    assert (source.folder / weights).read_bytes() == (served / weights).read_bytes()
    assert len(fake_hub.requests_for(weights, method="GET")) == 7


def test_not_enough_disk_refuses_before_fetching_any_weights(fake_hub, served, tmp_path, monkeypatch):
    monkeypatch.setattr(model_hub.shutil, "disk_usage", lambda path: SimpleNamespace(free=1024**3))
    with pytest.raises(DownloadFailed, match="Not enough disk") as raised:
        download_model(PRESET.name, tmp_path / "data", say=lambda line: None)
    assert "HF_HOME" in str(raised.value)
    assert not [r for r in fake_hub.requests if r.method == "GET" and r.file and r.file.endswith(".safetensors")]
    assert not (tmp_path / "data" / "models.lock.json").exists()


def test_an_unreachable_hub_is_a_clear_message(fake_hub, served, tmp_path):
    fake_hub.stop()
    with pytest.raises(DownloadFailed) as raised:
        download_model(PRESET.name, tmp_path / "data", say=lambda line: None)
    message = str(raised.value)
    assert message.startswith("Cannot reach the Hugging Face hub") and "run the same command again" in message


def test_an_unknown_repo_is_named(fake_hub, tmp_path):
    with pytest.raises(DownloadFailed, match="no model 'someone/nothing'"):
        download_model("someone/nothing", tmp_path / "data", say=lambda line: None)


def test_a_locked_model_stays_on_its_commit_until_upgrade(fake_hub, served, tmp_path):
    data = tmp_path / "data"
    first = download_model(PRESET.name, data, say=lambda line: None).revision
    newer_folder = tmp_path / "newer"
    shutil.copytree(served, newer_folder)
    (newer_folder / "scheduler" / "scheduler_config.json").write_text(
        (served / "scheduler" / "scheduler_config.json").read_text().replace('"flow_shift": 3.0', '"flow_shift": 5.0')
    )
    newer = fake_hub.add_commit(PRESET.repo, newer_folder)
    said: list[str] = []
    assert download_model(PRESET.name, data, say=said.append).revision == first
    assert "already" in said[0] or "is downloaded" in said[0]
    assert resolve_model(PRESET.name, data).revision == first, "main moved on the hub; this installation did not"
    upgraded = download_model(PRESET.name, data, upgrade=True, say=said.append)
    assert upgraded.revision == newer and read_lock(data)[PRESET.repo]["revision"] == newer
    assert any("lock moved" in line for line in said)
    assert resolve_model(PRESET.name, data).folder.name == newer


def test_the_command_line_download_shows_progress_and_says_where_it_is(fake_hub, served, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENERATOR_", "HANUL_", "HF_"))}
    env.update(fake_hub.environ(tmp_path / "hf-home"), HANUL_DATA_DIR=str(tmp_path / "data"))
    del env["HF_HUB_DISABLE_PROGRESS_BARS"]  # what an admin sees
    result = subprocess.run(
        [sys.executable, "-m", "generator", "download", PRESET.name],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    commit = fake_hub.commit_of(PRESET.repo)
    assert f"{PRESET.repo} at commit {commit[:12]}" in result.stdout
    assert f"ready: {PRESET.repo} at {commit}" in result.stdout
    assert "100%" in result.stderr, "the hub client's progress bars"
    assert read_lock(tmp_path / "data")[PRESET.repo]["revision"] == commit


async def test_a_service_starts_from_what_was_downloaded_and_renders_with_the_hub_gone(fake_hub, served, tmp_path):
    pytest.importorskip("ftfy")
    import asyncio

    from generator.service import start_generator
    from tests.support.generator_service import generator_settings, sdk_client

    data = tmp_path / "data"
    await asyncio.to_thread(download_model, PRESET.name, data, say=lambda line: None)
    fake_hub.stop()
    running = await start_generator(generator_settings(data, GENERATOR_MODEL=PRESET.name))
    try:
        async with sdk_client(running) as client:
            (model,) = (await client.models.list()).data
            video = await client.videos.create_and_poll(
                prompt="a paper boat",
                seconds="1",
                size="480x480",
                poll_interval_ms=50,
                extra_body={"num_inference_steps": 1},
            )
    finally:
        await running.stop()
    assert model.id == PRESET.name and model.model_dump()["family"] == "wan"
    assert video.status == "completed", video.error
