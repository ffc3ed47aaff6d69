"""The model path as an admin's machine breaks it: downloads cut off (a dropped connection, Ctrl+C, `kill -9`, a full
disk) and run again, caches left partial or damaged, a lock naming a commit the hub no longer has, refused
credentials, two downloads at once, and `GENERATOR_MODEL` naming a file or a folder that is not a video pipeline.
Each must end in a line or two saying what is wrong and the command that fixes it, and lose nothing that works."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest
from aiohttp import web

from generator.__main__ import main
from generator.catalog import PRESETS
from generator.hub import (
    LOCK_FILE,
    DownloadFailed,
    ModelNotDownloaded,
    ModelUnavailable,
    download_model,
    identify,
    is_downloaded,
    read_lock,
    resolve_model,
    write_lock,
)
from generator.listing import model_rows
from generator.pipelines.describe import describe_model
from generator.pipelines.tiny import build_tiny_like
from tests.support import fake_hub as fake_hub_support
from tests.support.fake_hub import FakeHub
from tests.support.hub_cache import preset_settings

fake_hub = fake_hub_support.fake_hub  # the fixtures
retry_waits = fake_hub_support.retry_waits
PRESET = PRESETS["wan2.1-1.3b"]
PINNED = PRESETS["ltx-2b-legacy"]  # the preset with a commit in the catalog: its snapshot is found without a lock
VAE = "vae/diffusion_pytorch_model.safetensors"
TRANSFORMER = "transformer/diffusion_pytorch_model.safetensors"


def quiet(line: str) -> None:
    pass


@pytest.fixture
def served(fake_hub: FakeHub, tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    build_tiny_like(PRESET).save_pretrained(folder)
    fake_hub.add_repo(PRESET.repo, folder)
    return folder


@pytest.fixture
def served_pinned(fake_hub: FakeHub, tmp_path: Path) -> Path:
    folder = tmp_path / "pinned-repo"
    build_tiny_like(PINNED).save_pretrained(folder)
    fake_hub.add_repo(PINNED.repo, folder, commit=PINNED.revision)
    return folder


# ----------------------------------------------------------------------------------- downloads cut off, run again


def test_a_download_cut_off_is_not_taken_for_a_whole_one_and_running_it_again_finishes_it(
    fake_hub, served_pinned, tmp_path, retry_waits
):
    data = tmp_path / "data"
    # The network drops on one file through all of one download's tries (3 of _fetch's, 1 + 5 of the hub client's
    # each): everything else arrived.
    fake_hub.drop_after(VAE, 0, times=18)
    with pytest.raises(DownloadFailed, match="run the same command again"):
        download_model(PINNED.name, data, say=quiet)
    assert not is_downloaded(PINNED.name, data)
    (row,) = [row for row in model_rows(preset_settings("tiny", data)) if row["name"] == PINNED.name]
    assert row["here"] == "no"
    with pytest.raises(ModelNotDownloaded) as raised:  # what the service says at start
        resolve_model(PINNED.name, data)
    message = str(raised.value)
    assert "partly downloaded" in message and "vae/" in message and f"download {PINNED.name}" in message
    assert len(message.splitlines()) <= 3
    assert read_lock(data) == {}, "a partial snapshot must not be locked"

    source = download_model(PINNED.name, data, say=quiet)
    assert (source.folder / VAE).read_bytes() == (served_pinned / VAE).read_bytes()
    assert resolve_model(PINNED.name, data).folder == source.folder


def test_a_file_missing_from_a_locked_download_is_fetched_by_the_next_download(fake_hub, served, tmp_path):
    data = tmp_path / "data"
    folder = download_model(PRESET.name, data, say=quiet).folder
    (folder / VAE).unlink()  # a shard deleted by hand, a cache cleaner, a copy that skipped it
    with pytest.raises(ModelNotDownloaded, match=r"partly downloaded.*vae/ \(its weights\)"):
        resolve_model(PRESET.name, data)
    said: list[str] = []
    assert download_model(PRESET.name, data, say=said.append).folder == folder
    assert "incomplete" in said[0]
    assert (folder / VAE).read_bytes() == (served / VAE).read_bytes()
    assert resolve_model(PRESET.name, data).folder == folder


def test_a_safetensors_file_cut_short_in_the_cache_is_named_and_fetched_again(fake_hub, served, tmp_path):
    data = tmp_path / "data"
    folder = download_model(PRESET.name, data, say=quiet).folder
    blob = (folder / TRANSFORMER).resolve()
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])  # a copied $HF_HOME that broke off
    with pytest.raises(ModelNotDownloaded, match="cut short"):
        resolve_model(PRESET.name, data)
    assert not is_downloaded(PRESET.name, data)
    download_model(PRESET.name, data, say=quiet)
    assert (folder / TRANSFORMER).read_bytes() == (served / TRANSFORMER).read_bytes()
    assert resolve_model(PRESET.name, data).folder == folder


def test_a_partial_file_left_by_a_killed_download_is_removed_unless_another_download_writes_it(
    fake_hub, served, tmp_path
):
    from filelock import FileLock

    blobs = tmp_path / "hf-home" / "hub" / "models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers" / "blobs"
    blobs.mkdir(parents=True)
    stale = blobs / f"{'a' * 64}.0badf00d.incomplete"  # kill -9: the hub client's `finally` never ran
    stale.write_bytes(b"\0" * 4096)
    busy = blobs / f"{'b' * 64}.12345678.incomplete"  # another terminal is writing this one now
    busy.write_bytes(b"\0" * 4096)
    locks = tmp_path / "hf-home" / "hub" / ".locks" / "models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers"
    locks.mkdir(parents=True)
    held = FileLock(locks / f"{'b' * 64}.lock")
    with held:
        download_model(PRESET.name, tmp_path / "data", say=quiet)
    assert not stale.exists()
    assert busy.exists()


def test_ctrl_c_during_a_download_says_what_to_do_without_a_traceback(monkeypatch, tmp_path, capsys):
    import generator.hub

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generator.hub, "download_model", interrupted)
    monkeypatch.setenv("HANUL_DATA_DIR", str(tmp_path / "data"))
    try:
        code = main(["download", PRESET.name])
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C ended `download` with a traceback")
    assert code == 130
    assert "run the same command again" in capsys.readouterr().err


def test_a_full_disk_mid_file_says_so_and_keeps_nothing_half_written(fake_hub, served, tmp_path, monkeypatch):
    from huggingface_hub import file_download

    real_get = file_download.http_get

    def filling(url, temp_file, **kwargs):
        if url.endswith(TRANSFORMER):
            temp_file.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_get(url, temp_file, **kwargs)

    monkeypatch.setattr(file_download, "http_get", filling)
    data = tmp_path / "data"
    with pytest.raises(DownloadFailed) as raised:
        download_model(PRESET.name, data, say=quiet)
    message = str(raised.value)
    assert "disk filled up" in message and "HF_HOME" in message and "run the download again" in message
    assert not (data / LOCK_FILE).exists()
    assert not list((tmp_path / "hf-home").rglob("*.incomplete"))
    monkeypatch.setattr(file_download, "http_get", real_get)  # space freed: the same command finishes
    assert download_model(PRESET.name, data, say=quiet).revision == fake_hub.commit_of(PRESET.repo)


# ------------------------------------------------------------------------------------- the lock and the cache


def test_a_lock_on_a_commit_the_hub_no_longer_has_names_it_and_the_upgrade_that_fixes_it(fake_hub, served, tmp_path):
    data = tmp_path / "data"
    gone = "0123456789abcdef" * 2 + "01234567"
    write_lock(data, PRESET.repo, gone, PRESET.name)  # history rewritten on the hub, cache emptied
    with pytest.raises(DownloadFailed) as raised:
        download_model(PRESET.name, data, say=quiet)
    message = str(raised.value)
    assert gone in message and f"download {PRESET.name} --upgrade" in message
    assert read_lock(data)[PRESET.repo]["revision"] == gone, "nothing moves without --upgrade"
    assert download_model(PRESET.name, data, upgrade=True, say=quiet).revision == fake_hub.commit_of(PRESET.repo)


def test_a_locked_model_missing_from_the_cache_names_the_cache_looked_in(hub_cache, tmp_path):
    data = tmp_path / "data"
    write_lock(data, PRESET.repo, "f" * 40, PRESET.name)  # downloaded with HF_HOME elsewhere
    with pytest.raises(ModelNotDownloaded) as raised:
        resolve_model(PRESET.name, data)
    message = str(raised.value)
    assert str(hub_cache) in message and "HF_HOME" in message and f"download {PRESET.name}" in message
    assert len(message.splitlines()) <= 4


def test_a_lock_file_edited_into_another_shape_is_a_clear_message_and_the_table_still_prints(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / LOCK_FILE).write_text(json.dumps({"version": 1, "models": {PRESET.repo: "abc"}}))
    with pytest.raises(ModelUnavailable, match="delete it"):
        resolve_model(PRESET.name, data)
    assert {row["here"] for row in model_rows(preset_settings("tiny", data)) if row["name"] == PRESET.name} == {"no"}


def test_two_downloads_finishing_at_once_both_keep_their_lock(tmp_path):
    data = tmp_path / "data"
    failures: list[BaseException] = []

    def record(repo: str) -> None:
        for step in range(150):
            try:
                write_lock(data, repo, f"{step:040x}", None)
            except BaseException as error:  # any failure is the finding
                failures.append(error)

    writers = [threading.Thread(target=record, args=(f"acme/model-{n}",)) for n in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert failures == []
    assert {repo: entry["revision"] for repo, entry in read_lock(data).items()} == {
        "acme/model-0": f"{149:040x}",
        "acme/model-1": f"{149:040x}",
    }


# ------------------------------------------------------------------------------------------- refused by the hub


def test_a_refused_token_is_a_clear_message(fake_hub, served, tmp_path, monkeypatch):
    async def refused(self, request, repo, revision, path, logged):
        return web.json_response({"error": "Invalid credentials in Authorization header"}, status=401)

    monkeypatch.setattr(FakeHub, "_resolve", refused)
    with pytest.raises(DownloadFailed) as raised:
        download_model(PRESET.name, tmp_path / "data", say=quiet)
    message = str(raised.value)
    assert "refused" in message and "HF_TOKEN" in message and "hf auth login" in message


# ------------------------------------------------------------------------------- files and folders as the model


def test_a_single_file_checkpoint_is_named_as_such(tmp_path):
    checkpoint = tmp_path / "ltx-video-2b-v0.9.8.safetensors"
    checkpoint.write_bytes(b"\0" * 64)
    with pytest.raises(ModelUnavailable, match="single-file checkpoint"):
        identify(str(checkpoint))
    folder = tmp_path / "ltx-checkpoint"
    folder.mkdir()
    (folder / "ltx-video-2b-v0.9.8.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(ModelUnavailable, match=r"not a diffusers pipeline folder(.|\n)*single-file checkpoint"):
        resolve_model(str(folder), tmp_path / "data")


def test_a_folder_of_another_pipeline_family_is_refused_at_once(tmp_path):
    folder = tmp_path / "ltx-video"  # named like a video model, holds an image model
    build_tiny_like(PRESET).save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(index | {"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(ModelUnavailable, match=r"StableDiffusionXLPipeline .*, not a video model Hanul runs"):
        resolve_model(str(folder), tmp_path / "data")


def test_a_hub_repo_of_another_pipeline_family_is_refused_before_its_weights_are_fetched(fake_hub, tmp_path):
    folder = tmp_path / "image-model"
    build_tiny_like(PRESET).save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(index | {"_class_name": "FluxPipeline"}))
    fake_hub.add_repo("acme/flux-tiny", folder)
    with pytest.raises(DownloadFailed, match=r"FluxPipeline, not a video model Hanul runs"):
        download_model("acme/flux-tiny", tmp_path / "data", say=quiet)
    assert not [r for r in fake_hub.requests if r.method == "GET" and r.file and r.file.endswith(".safetensors")]


def test_a_folder_is_described_by_its_pipeline_not_by_its_name(tmp_path):
    folder = tmp_path / "wan-vace"  # named VACE, holds plain text-to-video Wan
    build_tiny_like(PRESET).save_pretrained(folder)
    profile = describe_model(preset_settings(str(folder), tmp_path / "data", GENERATOR_WORKERS=0))
    assert not profile.supports_image and not profile.supports_video


def test_an_upgrade_that_changes_only_a_config_is_not_refused_for_the_weights_already_here(
    fake_hub, served, tmp_path, monkeypatch
):
    import shutil
    from types import SimpleNamespace

    from generator import hub as model_hub

    data = tmp_path / "data"
    first = download_model(PRESET.name, data, say=quiet)
    newer = tmp_path / "newer"
    shutil.copytree(served, newer)
    config = newer / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"flow_shift": 3.0', '"flow_shift": 5.0'))
    commit = fake_hub.add_commit(PRESET.repo, newer)
    # Room for the margin and a config, not for the weights again (on a real model: tens of GiB).
    monkeypatch.setattr(
        model_hub.shutil, "disk_usage", lambda path: SimpleNamespace(free=model_hub.DISK_MARGIN_BYTES + 4096)
    )
    said: list[str] = []
    upgraded = download_model(PRESET.name, data, upgrade=True, say=said.append)
    assert upgraded.revision == commit and upgraded.folder != first.folder
    assert resolve_model(PRESET.name, data).revision == commit
    assert "0.0 MiB to fetch" in said[0]
