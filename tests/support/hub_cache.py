"""A Hugging Face cache laid out by hand, as `huggingface_hub` leaves it after a download, for tests that need a model
"already downloaded" without a hub: `models--owner--name/{refs/main, snapshots/<commit>/…}`."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest


def fake_commit(text: str) -> str:
    """A 40-hex commit id derived from `text` (stable across runs)."""
    return hashlib.sha1(text.encode()).hexdigest()


def put_in_cache(cache: Path, repo: str, folder: Path, commit: str, *, main: bool = True) -> Path:
    """Copy a saved pipeline folder into `cache` as `repo` at `commit` (and point `main` at it); the snapshot path."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    if main:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache that `huggingface_hub` uses for the test (it reads the constant at call time)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def preset_settings(model: str, data_dir: Path, **extra: object):
    """Generator settings for a preset (or folder) rendered by the tiny models on the CPU, uncompiled."""
    from generator.settings import GeneratorSettings

    return GeneratorSettings(
        GENERATOR_MODEL=model,
        HANUL_DATA_DIR=str(data_dir),
        GENERATOR_DEVICE="cpu",
        GENERATOR_DTYPE="float32",
        GENERATOR_CPU_OFFLOAD=False,
        GENERATOR_VAE_TILING=False,
        GENERATOR_COMPILE="off",
        **extra,
    )


def cache_tiny_like(cache: Path, name: str, tmp_path: Path) -> str:
    """Save a tiny pipeline shaped like preset `name` into the hub cache as its repo; the commit it sits at."""
    from generator.catalog import PRESETS
    from generator.pipelines.tiny import build_tiny_like

    preset = PRESETS[name]
    folder = tmp_path / f"saved-{name}"
    build_tiny_like(preset).save_pretrained(folder)
    commit = preset.revision or fake_commit(name)
    put_in_cache(cache, preset.repo, folder, commit)
    return commit
