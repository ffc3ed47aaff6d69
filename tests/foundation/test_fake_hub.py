"""The fake hub (tests/support/fake_hub.py) against the real clients: huggingface_hub 2.4.0 and diffusers 0.42.

These also pin down how those clients behave, for the code that downloads models:
- resume happens inside one call: `http_get` retries a broken body after 1 s with `Range: bytes=N-`, N being the
  bytes already written in whole 10 MiB chunks (`constants.DOWNLOAD_CHUNK_SIZE`); a call that gives up deletes its
  partial file, so the next call starts from byte 0;
- an unknown repo is `RepositoryNotFoundError` from huggingface_hub, but diffusers' `download` turns it (and an
  unknown revision) into a plain `OSError` whose `__cause__` is the hub's error;
- with the hub unreachable, `model_info` raises `httpx2.ConnectError` at once, `snapshot_download` raises
  `LocalEntryNotFoundError` at once (`IncompleteSnapshotError`, a subclass, when a partial snapshot is cached),
  `hf_hub_download` raises `LocalEntryNotFoundError` after ~23 s of retries (1+2+4+8+8 s), and diffusers' `download`
  returns the cached snapshot if it is complete, else raises `OSError` caused by the `ConnectError`.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from diffusers import DiffusionPipeline, LTXConditionPipeline
from huggingface_hub import (
    HfApi,
    RepoFile,
    RepoFolder,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    model_info,
    snapshot_download,
)
from huggingface_hub.errors import (
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from generator.pipelines.tiny import PROFILE_FILE, save_tiny_pipeline
from tests.support import fake_hub as fake_hub_support
from tests.support.fake_hub import FakeHub, point_clients_at

fake_hub = fake_hub_support.fake_hub  # the fixtures: a running hub with the clients pointed at it, and retry sleeps
retry_waits = fake_hub_support.retry_waits

REPO = "acme/tiny-ltx"
MiB = 1024 * 1024


@pytest.fixture
def tiny_ltx(tmp_path: Path) -> Path:
    return save_tiny_pipeline(tmp_path / "tiny-ltx", family="ltx")


def big_repo(folder: Path, size: int) -> Path:
    """A repo with one LFS file of `size` bytes whose content shows where each byte came from."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"kind": "big"}')
    block = hashlib.sha256(b"fake hub").digest() * (MiB // 32)
    data = b"".join(index.to_bytes(4, "big") + block[4:] for index in range(size // MiB + 1))[:size]
    (folder / "weights.safetensors").write_bytes(data)
    return folder


def same_tree(left: Path, right: Path) -> bool:
    files = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file()):
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, [str(f) for f in files], shallow=False)
    return not mismatch and not errors


# -- the happy paths --------------------------------------------------------------------------------------------


def test_snapshot_download_gives_the_served_files_under_the_served_commit(
    fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path
) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)

    folder = Path(snapshot_download(REPO, cache_dir=tmp_path / "cache"))

    assert folder.name == sha
    assert (folder.parents[1] / "refs" / "main").read_text() == sha
    assert same_tree(folder, tiny_ltx)
    # repo_info for the commit, the tree of that commit, then one HEAD and one GET per file, all at the sha
    calls = [(r.method, r.path) for r in fake_hub.requests if r.site == "hub"]
    assert calls[:2] == [("GET", f"/api/models/{REPO}/revision/main"), ("GET", f"/api/models/{REPO}/tree/{sha}")]
    assert all(f"/resolve/{sha}/" in path for _, path in calls[2:])


def test_diffusers_download_fetches_a_pipeline_that_loads(fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)

    folder = Path(DiffusionPipeline.download(REPO, cache_dir=tmp_path / "cache"))

    assert folder.name == sha
    pipeline = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(pipeline, LTXConditionPipeline)
    # diffusers only asks for what model_index.json names: files of the repo outside it are not fetched
    assert not (folder / PROFILE_FILE).exists()
    first = [(r.method, r.path, dict(r.query)) for r in fake_hub.requests[:3]]
    assert first == [
        ("GET", f"/api/models/{REPO}", {}),  # resolve_revision: main -> sha
        ("GET", f"/api/models/{REPO}/revision/main", {}),  # model_info, by name again (not pinned to the sha)
        ("HEAD", f"/{REPO}/resolve/{sha}/model_index.json", {}),
    ]


def test_a_new_commit_moves_main_and_a_pinned_revision_stays(fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path) -> None:
    first = fake_hub.add_repo(REPO, tiny_ltx)
    newer_folder = tmp_path / "newer"
    save_tiny_pipeline(newer_folder, family="ltx")
    (newer_folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "Changed"}))

    second = fake_hub.add_commit(REPO, newer_folder)

    assert second != first
    assert model_info(REPO).sha == second
    assert model_info(REPO, revision=first).sha == first
    pinned = Path(snapshot_download(REPO, revision=first, cache_dir=tmp_path / "cache"))
    latest = Path(snapshot_download(REPO, cache_dir=tmp_path / "cache"))
    assert (pinned.name, latest.name) == (first, second)
    assert same_tree(pinned, tiny_ltx) and same_tree(latest, newer_folder)


def test_commits_are_derived_from_content_unless_given(tiny_ltx: Path) -> None:
    with FakeHub() as one, FakeHub() as other:
        assert one.add_repo(REPO, tiny_ltx) == other.add_repo(REPO, tiny_ltx)
        assert one.add_repo("acme/named", tiny_ltx, commit="a" * 40) == "a" * 40
        with pytest.raises(ValueError, match="40 lowercase hex"):
            one.add_repo("acme/bad", tiny_ltx, commit="main")


def test_model_info_with_files_metadata_reports_every_size(fake_hub: FakeHub, tiny_ltx: Path) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)

    info = model_info(REPO, files_metadata=True)

    sizes = {p.relative_to(tiny_ltx).as_posix(): p.stat().st_size for p in tiny_ltx.rglob("*") if p.is_file()}
    assert info.sha == sha
    assert {s.rfilename: s.size for s in info.siblings} == sizes
    weights = {s.rfilename: s.lfs for s in info.siblings if s.rfilename.endswith(".safetensors")}
    assert weights and all(lfs is not None and lfs.size == sizes[name] for name, lfs in weights.items())
    assert all(s.size is None for s in model_info(REPO).siblings)  # sizes only when asked for


def test_file_metadata_is_what_the_real_hub_sends(fake_hub: FakeHub, tiny_ltx: Path) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)
    weights = tiny_ltx / "vae" / "diffusion_pytorch_model.safetensors"

    lfs = get_hf_file_metadata(hf_hub_url(REPO, "vae/diffusion_pytorch_model.safetensors"))
    plain = get_hf_file_metadata(hf_hub_url(REPO, "model_index.json"))

    # an LFS file: a redirect to the "CDN" port carrying the sha256 and real size of the file
    assert (lfs.commit_hash, lfs.size) == (sha, weights.stat().st_size)
    assert lfs.etag == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert lfs.location.startswith(fake_hub.cdn_endpoint)
    # a regular file: served in place, its ETag the git blob id
    data = (tiny_ltx / "model_index.json").read_bytes()
    assert plain.etag == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert (plain.size, plain.location) == (len(data), hf_hub_url(REPO, "model_index.json"))
    assert lfs.xet_file_data is None and plain.xet_file_data is None


def test_tree_and_paths_info_list_what_the_commit_holds(fake_hub: FakeHub, tiny_ltx: Path) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)
    api = HfApi()

    top = {entry.path: type(entry) for entry in api.list_repo_tree(REPO)}
    vae = sorted(entry.path for entry in api.list_repo_tree(REPO, path_in_repo="vae", revision=sha))
    found = api.get_paths_info(REPO, ["vae", "model_index.json", "missing.txt"], expand=True)

    assert top["vae"] is RepoFolder and top["model_index.json"] is RepoFile and "vae/config.json" not in top
    assert vae == ["vae/config.json", "vae/diffusion_pytorch_model.safetensors"]
    assert [(entry.path, type(entry)) for entry in found] == [("vae", RepoFolder), ("model_index.json", RepoFile)]
    assert all(entry.last_commit is not None and entry.last_commit.oid == sha for entry in found)


# -- broken downloads -------------------------------------------------------------------------------------------


def test_a_body_dropped_after_whole_chunks_resumes_with_a_range_request_in_the_same_call(
    fake_hub: FakeHub, tmp_path: Path, retry_waits: list[float]
) -> None:
    source = big_repo(tmp_path / "big", 12 * MiB)
    fake_hub.add_repo("acme/big", source)
    fake_hub.drop_after("weights.safetensors", 11 * MiB)

    path = hf_hub_download("acme/big", "weights.safetensors", cache_dir=tmp_path / "cache")

    assert Path(path).read_bytes() == (source / "weights.safetensors").read_bytes()
    gets = fake_hub.requests_for("weights.safetensors", method="GET")
    # 11 MiB arrived, but only the first whole 10 MiB chunk had reached the disk when the connection broke
    assert [(g.range, g.status) for g in gets] == [(None, None), (f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-", 206)]
    assert retry_waits == [1]


def test_a_body_dropped_inside_its_first_chunk_starts_over_in_the_same_call(
    fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path, retry_waits: list[float]
) -> None:
    fake_hub.add_repo(REPO, tiny_ltx)
    fake_hub.drop_after("vae/diffusion_pytorch_model.safetensors", 1000)

    folder = Path(snapshot_download(REPO, cache_dir=tmp_path / "cache"))

    assert same_tree(folder, tiny_ltx)
    gets = fake_hub.requests_for("vae/diffusion_pytorch_model.safetensors", method="GET")
    assert [g.range for g in gets] == [None, None]


def test_a_download_that_keeps_breaking_fails_and_the_next_call_starts_from_zero(
    fake_hub: FakeHub, tmp_path: Path, retry_waits: list[float]
) -> None:
    source = big_repo(tmp_path / "big", 12 * MiB)
    fake_hub.add_repo("acme/big", source)
    fake_hub.drop_after("weights.safetensors", 11 * MiB)
    fake_hub.drop_after("weights.safetensors", 0, times=5)  # after a break, 5 more tries; none of them gets a byte

    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download("acme/big", "weights.safetensors", cache_dir=tmp_path / "cache")
    assert len(fake_hub.requests_for("weights.safetensors", method="GET")) == 6
    assert retry_waits == [1] * 5
    assert not list((tmp_path / "cache").rglob("*.incomplete"))  # the partial file is gone

    path = hf_hub_download("acme/big", "weights.safetensors", cache_dir=tmp_path / "cache")

    assert Path(path).read_bytes() == (source / "weights.safetensors").read_bytes()
    assert fake_hub.requests_for("weights.safetensors", method="GET")[-1].range is None


# -- what goes wrong, as each client reports it ----------------------------------------------------------------


def test_an_unknown_repo_revision_or_file_raises_the_hubs_errors(
    fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path
) -> None:
    fake_hub.add_repo(REPO, tiny_ltx)
    cache = tmp_path / "cache"

    with pytest.raises(RepositoryNotFoundError):
        model_info("acme/missing")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("acme/missing", cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="v9", cache_dir=cache)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.json", cache_dir=cache)
    # diffusers falls back to the cache, finds nothing, and wraps the hub's answer
    with pytest.raises(OSError, match="not fully cached") as unknown_repo:
        DiffusionPipeline.download("acme/missing", cache_dir=cache)
    assert isinstance(unknown_repo.value.__cause__, RepositoryNotFoundError)
    with pytest.raises(OSError, match="not fully cached") as unknown_revision:
        DiffusionPipeline.download(REPO, revision="v9", cache_dir=cache)
    assert isinstance(unknown_revision.value.__cause__, RevisionNotFoundError)
    assert {r.status for r in fake_hub.requests if "missing" in r.path or "v9" in r.path} == {404}


def test_with_the_hub_stopped_each_client_raises_its_offline_error(
    fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path, retry_waits: list[float]
) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)
    cached = Path(DiffusionPipeline.download(REPO, cache_dir=tmp_path / "cache"))
    fake_hub.stop()
    empty = tmp_path / "empty-cache"

    with pytest.raises(httpx2.ConnectError):
        model_info(REPO)
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download(REPO, cache_dir=empty)
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "model_index.json", cache_dir=empty)
    assert retry_waits == [1, 2, 4, 8, 8]  # hf_hub_download retries a connection error before giving up
    with pytest.raises(OSError, match="not fully cached") as uncached:
        DiffusionPipeline.download(REPO, cache_dir=empty)
    assert isinstance(uncached.value.__cause__, httpx2.ConnectError)
    # what diffusers fetched is complete for diffusers, so it is returned from the cache ...
    assert DiffusionPipeline.download(REPO, cache_dir=tmp_path / "cache") == cached
    # ... but not for snapshot_download, whose tree listing also names the profile diffusers skipped
    with pytest.raises(IncompleteSnapshotError, match=PROFILE_FILE):
        snapshot_download(REPO, cache_dir=tmp_path / "cache")

    fake_hub.start()  # back online, at the same endpoint

    assert model_info(REPO).sha == sha


async def test_a_hub_started_in_an_async_test_serves_blocking_clients(tiny_ltx: Path, tmp_path: Path) -> None:
    monkeypatch = pytest.MonkeyPatch()
    try:
        async with FakeHub() as hub:
            point_clients_at(monkeypatch, hub.endpoint, tmp_path / "hf-home")
            sha = hub.add_repo(REPO, tiny_ltx)
            # the server has its own thread and loop, so a blocking call from this loop does not deadlock
            assert model_info(REPO).sha == sha
    finally:
        monkeypatch.undo()


def test_a_subprocess_reaches_the_hub_through_its_environment(
    fake_hub: FakeHub, tiny_ltx: Path, tmp_path: Path
) -> None:
    sha = fake_hub.add_repo(REPO, tiny_ltx)
    script = f"from huggingface_hub import snapshot_download; print(snapshot_download({REPO!r}))"

    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **fake_hub.environ(tmp_path / "child-home")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder == tmp_path / "child-home" / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / sha
    assert same_tree(folder, tiny_ltx)
