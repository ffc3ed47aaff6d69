"""Model weights on this machine: where a configured model's files are, fetching them, and the lock on their commit.

`GENERATOR_MODEL` names a catalog preset, a hub repo id or a local folder. Hub models are fetched once with
`python -m generator download` (only the files the pipeline loads, resumable, after a free-disk check) into the
Hugging Face cache (`HF_HOME`). The commit fetched is written to `models.lock.json` in the data folder and the
service loads exactly that commit's folder afterwards, without asking the hub anything, until
`download --upgrade`: a repo that changes on the hub cannot change a running installation. The service never
downloads by itself; a model that is not here stops it with a short message naming the command that fetches it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from .catalog import PRESETS, ModelPreset, find_preset

log = logging.getLogger(__name__)

LOCK_FILE = "models.lock.json"
TINY_NAMES = ("tiny", "tiny-sound")  # random-weight test models built in code (generator/pipelines/tiny.py)
DISK_MARGIN_BYTES = 2 * 1024**3  # left free after a download: the cache's own temporary files, logs, the database
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Weight files the pipeline does not load when safetensors are there (diffusers prefers safetensors).
_OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx", ".pb", ".gguf")
_VARIANT = re.compile(r"\.(fp16|fp32|bf16|ema|non_ema|fp8)[.-]")


class ModelUnavailable(Exception):
    """The configured model cannot be used here; the message says what to do, in a few lines."""


class ModelNotDownloaded(ModelUnavailable):
    """A hub model whose files are not in this machine's cache."""


class DownloadFailed(ModelUnavailable):
    """Fetching a model failed (offline, unknown repo, not enough disk); the message says what to do."""


@dataclass(frozen=True)
class ModelSource:
    """Where the configured model's weights come from."""

    name: str  # as configured: a preset name, a hub id, a folder or `tiny`
    preset: ModelPreset | None = None
    repo: str | None = None  # hub repo id
    revision: str | None = None  # the commit loaded (hub models)
    folder: Path | None = None  # the local folder `from_pretrained` reads; None for the tiny test models

    @property
    def is_tiny(self) -> bool:
        return self.name in TINY_NAMES


def download_command(name: str) -> str:
    return f"python -m generator download {name}"


# ---------------------------------------------------------------------------------------------------- the lock file


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


def read_lock(data_dir: Path) -> dict[str, dict[str, str]]:
    """Locked commits by repo id: {repo: {"revision": sha, "preset": name, "downloaded_at": iso time}}."""
    path = lock_path(data_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ModelUnavailable(f"{path} cannot be read ({error}); delete it and run the download again") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ModelUnavailable(f"{path} is not a Hanul model lock file; delete it and run the download again")
    return models


def write_lock(data_dir: Path, repo: str, revision: str, preset: str | None) -> None:
    """Record `repo` at `revision`; written to a temporary file and renamed, so a crash leaves the old lock."""
    models = read_lock(data_dir)
    models[repo] = {
        "revision": revision,
        "preset": preset or "",
        "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"version": 1, "models": models}, indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(temporary, path)


# -------------------------------------------------------------------------------------------------------- resolving


def identify(model: str) -> ModelSource:
    """What `model` names, without looking at any cache: tiny, a local folder, a preset or a hub repo id."""
    name = model.strip()
    if name in TINY_NAMES:
        return ModelSource(name=name)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(name=name, folder=path)
    preset = find_preset(name)
    if preset is not None:
        return ModelSource(name=name, preset=preset, repo=preset.repo, revision=preset.revision)
    if _REPO_ID.match(name):
        return ModelSource(name=name, repo=name)
    looks_like_path = name.startswith((".", "/", "~")) or (os.sep in name and name.count("/") != 1)
    if looks_like_path:
        raise ModelUnavailable(f"GENERATOR_MODEL={name!r}: no such folder")
    raise ModelUnavailable(
        f"GENERATOR_MODEL={name!r} is not a preset, a hub id (owner/name) or a folder.\n"
        f"Presets: {', '.join(PRESETS)} (python -m generator models lists them); "
        f"{' and '.join(TINY_NAMES)}: random weights, for smoke runs"
    )


def resolve_model(model: str, data_dir: Path, *, lock_found: bool = True) -> ModelSource:
    """The configured model with the folder to load it from; hub models must have been downloaded.

    A hub model loads from its locked commit. One found in the cache without a lock (fetched with another tool)
    is locked now at the commit found, so it cannot change under this installation afterwards."""
    source = identify(model)
    if source.repo is None:
        return source
    locked = read_lock(data_dir).get(source.repo, {}).get("revision")
    revision = locked or source.revision
    folder = cached_snapshot(source.repo, revision)
    if folder is None:
        where = f"commit {revision}" if revision else "any commit"
        raise ModelNotDownloaded(
            f"The video model {source.name!r} ({source.repo}, {where}) is not downloaded on this machine.\n"
            f"Fetch it once with:  {download_command(source.name)}\n"
            "(It goes to the Hugging Face cache, HF_HOME; GENERATOR_MODEL can also name a local folder.)"
        )
    commit = folder.name
    if locked is None and lock_found:
        write_lock(data_dir, source.repo, commit, source.preset.name if source.preset else None)
        log.info("locked %s at commit %s (found in the cache)", source.repo, commit)
    return ModelSource(name=source.name, preset=source.preset, repo=source.repo, revision=commit, folder=folder)


def cached_snapshot(repo: str, revision: str | None) -> Path | None:
    """The cache's folder of `repo` at `revision` (a commit, or the cached `main`), if its pipeline index is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "model_index.json", revision=revision or "main")
    if not isinstance(found, str):  # None: never fetched; a sentinel object: known to be missing
        return None
    return Path(found).parent


def is_downloaded(model: str, data_dir: Path) -> bool:
    """Whether `model` can load here without the network (the lock file is left as it is)."""
    try:
        resolve_model(model, data_dir, lock_found=False)
    except ModelUnavailable:
        return False
    return True


# ------------------------------------------------------------------------------------------------------ downloading


@dataclass(frozen=True)
class DownloadPlan:
    """What a download will fetch: the commit, the files the pipeline loads and the bytes still missing."""

    repo: str
    commit: str
    files: dict[str, int]  # path in the repo -> size in bytes
    missing_bytes: int


def plan_download(repo: str, revision: str, cache_dir: Path | None = None) -> DownloadPlan:
    """Ask the hub for `repo` at `revision`: its commit and the files a diffusers pipeline loads from it."""
    from huggingface_hub import hf_hub_download, model_info, try_to_load_from_cache

    info = model_info(repo, revision=revision, files_metadata=True)
    commit = info.sha
    sizes = {sibling.rfilename: int(sibling.size or 0) for sibling in info.siblings or []}
    if "model_index.json" not in sizes:
        raise DownloadFailed(f"{repo} is not a diffusers pipeline (it has no model_index.json)")
    index_file = hf_hub_download(repo, "model_index.json", revision=commit, cache_dir=cache_dir)
    components = [
        name
        for name, value in json.loads(Path(index_file).read_text(encoding="utf-8")).items()
        if not name.startswith("_") and isinstance(value, list) and value[0] is not None
    ]
    files = pipeline_files(sizes, components)
    missing = sum(
        size
        for path, size in files.items()
        if not isinstance(try_to_load_from_cache(repo, path, revision=commit, cache_dir=cache_dir), str)
    )
    return DownloadPlan(repo=repo, commit=commit, files=files, missing_bytes=missing)


def pipeline_files(sizes: dict[str, int], components: list[str]) -> dict[str, int]:
    """The files of a diffusers repo that loading its pipeline reads: the index, each component's folder, and of
    its weights the safetensors without a variant suffix when there are such (what diffusers itself picks)."""
    chosen = {}
    for path, size in sizes.items():
        parts = PurePosixPath(path).parts
        if path == "model_index.json":
            chosen[path] = size
            continue
        if len(parts) != 2 or parts[0] not in components:
            continue
        folder_files = [p for p in sizes if p.startswith(parts[0] + "/")]
        has_safetensors = any(p.endswith(".safetensors") and not _VARIANT.search(p) for p in folder_files)
        name = parts[1]
        if has_safetensors and (name.endswith(_OTHER_WEIGHTS) or _VARIANT.search(name)):
            continue
        chosen[path] = size
    return chosen


def download_model(
    model: str, data_dir: Path, *, upgrade: bool = False, cache_dir: Path | None = None, say=print
) -> ModelSource:
    """Fetch `model` (a preset or hub id) into the cache and lock the commit fetched.

    Without `upgrade` a locked model is fetched at its locked commit (finishing an interrupted download); with it,
    at the preset's pinned commit or the repo's newest, and the lock moves there. Files already in the cache are
    not fetched again; partial files are resumed."""
    source = identify(model)
    if source.repo is None:
        say(f"{source.name!r} is {'built in code' if source.is_tiny else 'a local folder'}: nothing to download")
        return source
    locked = read_lock(data_dir).get(source.repo, {}).get("revision")
    if locked and not upgrade and (folder := cached_snapshot(source.repo, locked)) is not None:
        say(f"{source.repo} is downloaded (commit {locked[:12]}); `--upgrade` fetches a newer one")
        return ModelSource(name=source.name, preset=source.preset, repo=source.repo, revision=locked, folder=folder)
    revision = locked if locked and not upgrade else (source.revision or "main")
    try:
        plan = plan_download(source.repo, revision, cache_dir)
        _check_disk(plan, cache_dir)
        say(
            f"{source.repo} at commit {plan.commit[:12]}: {len(plan.files)} files, "
            f"{_gib(sum(plan.files.values()))} in all, {_gib(plan.missing_bytes)} to fetch"
        )
        folder = _fetch(source.repo, plan.commit, cache_dir)
    except ModelUnavailable:
        raise
    except Exception as error:
        raise DownloadFailed(_explain(error, source)) from None
    preset = source.preset.name if source.preset else None
    write_lock(data_dir, source.repo, plan.commit, preset)
    if locked and locked != plan.commit:
        say(f"lock moved from {locked[:12]} to {plan.commit[:12]}")
    return ModelSource(name=source.name, preset=source.preset, repo=source.repo, revision=plan.commit, folder=folder)


def _fetch(repo: str, commit: str, cache_dir: Path | None) -> Path:
    """diffusers' own download: the files its `from_pretrained` loads, with the hub client's progress bars.
    An interrupted file is resumed from its partial copy; a dropped connection is retried twice before giving up."""
    from diffusers import DiffusionPipeline

    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            return Path(DiffusionPipeline.download(repo, revision=commit, cache_dir=cache_dir))
        except Exception as error:
            if attempt == attempts or not _is_connection_error(error):
                raise
            log.warning("download interrupted (%s); resuming", type(error).__name__)
    raise AssertionError("unreachable")


# The hub client's HTTP library (httpx, or httpx2 in huggingface_hub 2.x) raises these on a network failure.
_NETWORK_ERRORS = {"TransportError", "NetworkError", "TimeoutException", "RemoteProtocolError"}


def _is_connection_error(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is the network failing, by class name whatever the HTTP library."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    chain: BaseException | None = error
    while chain is not None:
        if isinstance(chain, OfflineModeIsEnabled):
            return False
        if isinstance(chain, ConnectionError) or _NETWORK_ERRORS & {cls.__name__ for cls in type(chain).__mro__}:
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def _check_disk(plan: DownloadPlan, cache_dir: Path | None) -> None:
    from huggingface_hub import constants

    root = Path(cache_dir or constants.HF_HUB_CACHE)
    probe = root
    while not probe.exists():  # the cache folder may not exist yet: measure the disk it will be on
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if plan.missing_bytes + DISK_MARGIN_BYTES > free:
        raise DownloadFailed(
            f"Not enough disk for {plan.repo}: {_gib(plan.missing_bytes)} to fetch (+{_gib(DISK_MARGIN_BYTES)} "
            f"spare), {_gib(free)} free under {root}.\n"
            "Free some space, or point HF_HOME at a larger disk, then run the download again."
        )


def _explain(error: BaseException, source: ModelSource) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = source.repo
    # diffusers wraps the hub client's error in an OSError; the cause says what happened.
    chain: BaseException | None = error
    while chain is not None and not isinstance(
        chain, (OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)
    ):
        chain = chain.__cause__ or chain.__context__
    error = chain or error
    if isinstance(error, OfflineModeIsEnabled):
        return (
            f"Cannot download {name}: HF_HUB_OFFLINE is set.\n"
            "Unset it on a machine with network and run the download again, or copy the model folder here and set "
            "GENERATOR_MODEL to its path."
        )
    if isinstance(error, GatedRepoError):
        return (
            f"{name} is gated on the Hugging Face hub: accept its licence on its page, log in with "
            "`hf auth login` (or set HF_TOKEN), then run the download again."
        )
    if isinstance(error, RevisionNotFoundError):
        return f"{name} has no revision {source.revision or 'main'!r} on the hub."
    if isinstance(error, RepositoryNotFoundError):
        return f"There is no model {name!r} on the Hugging Face hub (or it is private: log in with `hf auth login`)."
    if _is_connection_error(error):
        from huggingface_hub import constants

        return (
            f"Cannot reach the Hugging Face hub ({constants.ENDPOINT}) to download {name}: {_first_line(error)}\n"
            "Check the network (or HF_ENDPOINT), then run the same command again: finished files are kept and a "
            "partial one resumes."
        )
    return f"Downloading {name} failed: {type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 / 10 else f"{size / 1024**2:.1f} MiB"
