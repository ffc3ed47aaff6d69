"""Model weights on this machine: where a configured model's files are, fetching them, and the lock on their commit.

`GENERATOR_MODEL` names a catalog preset, a hub repo id or a local folder. Hub models are fetched once with
`python -m generator download` (only the files the pipeline loads, resumable, after a free-disk check) into the
Hugging Face cache (`HF_HOME`). The commit fetched is written to `models.lock.json` in the data folder and the
service loads exactly that commit's folder afterwards, without asking the hub anything, until
`download --upgrade`: a repo that changes on the hub cannot change a running installation. The service never
downloads by itself; a model that is not here stops it with a short message naming the command that fetches it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import threading
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
    if not isinstance(models, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("revision"), str) for entry in models.values()
    ):
        raise ModelUnavailable(f"{path} is not a Hanul model lock file; delete it and run the download again")
    return models


def write_lock(data_dir: Path, repo: str, revision: str, preset: str | None) -> None:
    """Record `repo` at `revision`; written to a temporary file and renamed, so a crash leaves the old lock. Two
    downloads at once (two terminals) take turns: neither loses the other's entry nor its temporary file."""
    from filelock import FileLock

    path = lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        models = read_lock(data_dir)
        models[repo] = {
            "revision": revision,
            "preset": preset or "",
            "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            temporary.write_text(json.dumps({"version": 1, "models": models}, indent=2, sort_keys=True) + "\n", "utf-8")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


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
    if path.is_file():
        raise ModelUnavailable(
            f"GENERATOR_MODEL={name!r} is a file (a single-file checkpoint?): Hanul loads a diffusers pipeline, a "
            "folder with model_index.json.\nPick a preset (python -m generator models), a hub id in diffusers format, "
            "or such a folder."
        )
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
    """The configured model with the folder to load it from; hub models must have been downloaded whole.

    A hub model loads from its locked commit. One found in the cache without a lock (fetched with another tool)
    is locked now at the commit found, so it cannot change under this installation afterwards."""
    source = identify(model)
    if source.folder is not None:
        _check_folder(source)
        return source
    if source.repo is None:
        return source
    locked = read_lock(data_dir).get(source.repo, {}).get("revision")
    revision = locked or source.revision
    folder = cached_snapshot(source.repo, revision)
    if folder is None:
        from huggingface_hub import constants

        where = f"commit {revision}" if revision else "any commit"
        raise ModelNotDownloaded(
            f"The video model {source.name!r} ({source.repo}, {where}) is not downloaded on this machine"
            + (" (models.lock.json says it was: was HF_HOME another folder then?)" if locked else "")
            + f".\nFetch it once with:  {download_command(source.name)}\n"
            f"(It goes to the Hugging Face cache, HF_HOME: now {constants.HF_HUB_CACHE}; GENERATOR_MODEL can also name "
            "a local folder.)"
        )
    if missing := missing_parts(folder):
        raise ModelNotDownloaded(
            f"The video model {source.name!r} ({source.repo}, commit {folder.name}) is only partly downloaded "
            f"(missing or cut short: {_listed(missing)}).\nFinish it with:  {download_command(source.name)}"
        )
    _check_class(folder, source.name)
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


# A component of these classes holds no weights: a scheduler's config, a tokenizer's or processor's files.
_WITHOUT_WEIGHTS = re.compile(r"Scheduler$|Tokenizer|Processor$|FeatureExtractor$")
_WEIGHTS = (".safetensors", *_OTHER_WEIGHTS)


def missing_parts(folder: Path) -> list[str]:
    """What a diffusers pipeline folder lacks for `from_pretrained`, by a cheap look (no weights are read): its
    `model_index.json`, each component's folder, a model's config and weights with every shard its index names, and
    safetensors files shorter than their header says (a download or a copy cut short). Empty when it looks whole."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ["model_index.json"]
    except (OSError, ValueError):
        return ["model_index.json (unreadable)"]
    missing = []
    for name, value in index.items() if isinstance(index, dict) else ():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        part = folder / name
        files = sorted(part.iterdir()) if part.is_dir() else []
        if not files:
            missing.append(f"{name}/")
            continue
        if _WITHOUT_WEIGHTS.search(str(value[1])):
            continue
        names = {file.name for file in files if file.is_file()}  # a link to a blob that is gone is not a file
        if "config.json" not in names:
            missing.append(f"{name}/config.json")
        if not any(file.endswith(_WEIGHTS) for file in names):
            missing.append(f"{name}/ (its weights)")
        for shard_index in part.glob("*.index.json"):
            try:
                shards = set(json.loads(shard_index.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                missing.append(f"{name}/{shard_index.name} (unreadable)")
                continue
            missing += [f"{name}/{shard}" for shard in sorted(shards - names)]
        missing += [f"{name}/{file.name} (cut short)" for file in files if _cut_short(file)]
    return missing


def _cut_short(file: Path) -> bool:
    """Whether a safetensors file's size differs from what its header says: a download or a copy that broke off."""
    if not file.name.endswith(".safetensors") or not file.is_file():
        return False
    try:
        size = file.stat().st_size
        with file.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 + length:
                return True
            header = json.loads(handle.read(length))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return True
    return size != 8 + length + end


def _listed(missing: list[str]) -> str:
    return ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")


def _check_folder(source: ModelSource) -> None:
    """A local folder must hold a whole diffusers pipeline of a family Hanul runs."""
    assert source.folder is not None
    missing = missing_parts(source.folder)
    if missing == ["model_index.json"]:
        raise ModelUnavailable(
            f"GENERATOR_MODEL={source.name!r}: {source.folder} is not a diffusers pipeline folder (no "
            "model_index.json).\n"
            "Hanul loads a whole pipeline (saved with save_pretrained, or a hub repo in diffusers format), not a "
            "single-file checkpoint: pick a preset (python -m generator models) or a hub id in diffusers format."
        )
    if missing:
        raise ModelUnavailable(
            f"GENERATOR_MODEL={source.name!r}: the pipeline in {source.folder} is incomplete (missing or cut short: "
            f"{_listed(missing)}).\nCopy the whole folder again, or fetch a preset: python -m generator download NAME"
        )
    _check_class(source.folder, source.name)


def pipeline_class_in(folder: Path) -> str:
    """The `_class_name` of a pipeline folder's `model_index.json` ("" if it has none)."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else ""


def _check_class(folder: Path, name: str) -> None:
    """A pipeline diffusers itself knows that is not LTX-Video, LTX-2 or Wan (an image model, another video family)
    cannot be loaded by Hanul's backends: say so, instead of a loader's error at start."""
    class_name = _not_a_family_hanul_runs(pipeline_class_in(folder))
    if class_name:
        raise ModelUnavailable(
            f"{name!r} is a {class_name} ({folder}), not a video model Hanul runs: LTX-Video, LTX-2 or Wan in "
            "diffusers format.\nPick one of the presets: python -m generator models"
        )


def _not_a_family_hanul_runs(class_name: str) -> str:
    """`class_name` when it is a diffusers pipeline of another family, else "" (custom classes are let through)."""
    if not class_name or any(marker in class_name.lower() for marker in ("ltx", "wan")):
        return ""
    import diffusers

    return class_name if hasattr(diffusers, class_name) else ""


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
    if class_name := _not_a_family_hanul_runs(pipeline_class_in(Path(index_file).parent)):
        raise DownloadFailed(
            f"{repo} is a {class_name}, not a video model Hanul runs: LTX-Video, LTX-2 or Wan in diffusers format.\n"
            "Pick one of the presets: python -m generator models"
        )
    components = [
        name
        for name, value in json.loads(Path(index_file).read_text(encoding="utf-8")).items()
        if not name.startswith("_") and isinstance(value, list) and value[0] is not None
    ]
    files = pipeline_files(sizes, components)
    snapshot = Path(index_file).parent
    _remove_cut_short(snapshot, files)
    # A file another commit already brought (an upgrade that changed only a config) is linked, not fetched again.
    blobs = snapshot.parent.parent / "blobs"
    etags = {s.rfilename: s.lfs.sha256 if s.lfs else s.blob_id for s in info.siblings or []}
    missing = sum(
        size
        for path, size in files.items()
        if not isinstance(try_to_load_from_cache(repo, path, revision=commit, cache_dir=cache_dir), str)
        and not (etags.get(path) and (blobs / str(etags[path])).is_file())
    )
    return DownloadPlan(repo=repo, commit=commit, files=files, missing_bytes=missing)


def _remove_cut_short(snapshot: Path, files: dict[str, int]) -> None:
    """Delete the cached copies of `files` that are cut short (a copied cache that broke off, a damaged disk): the hub
    client skips any file it finds in the snapshot, so only a deleted one is fetched again."""
    for path in files:
        entry = snapshot / path
        if not _cut_short(entry):
            continue
        blob = entry.resolve()
        log.warning("%s is cut short; fetching it again", entry)
        entry.unlink()
        if blob.parent.name == "blobs":  # the cache's copy that the snapshot links to
            blob.unlink(missing_ok=True)


def _remove_stale_partials(repo: str, cache_dir: Path | None) -> None:
    """Delete the partial files a killed download left (`kill -9`, a power cut: nothing deleted them, and a new
    download starts each file afresh), unless another download is writing them now (it holds the file's lock)."""
    from filelock import FileLock, Timeout
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir or constants.HF_HUB_CACHE)
    folder = repo_folder_name(repo_id=repo, repo_type="model")
    for partial in (root / folder / "blobs").glob("*.incomplete"):
        lock = FileLock(root / ".locks" / folder / f"{partial.name.split('.')[0]}.lock", timeout=0, mode=0o664)
        try:
            with lock:
                partial.unlink(missing_ok=True)
        except (Timeout, OSError):
            continue


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
    not fetched again, unless cut short; a file broken off by the network is resumed within the call, and the partial
    files a killed download left are removed. The lock is written only once the commit's pipeline is whole."""
    source = identify(model)
    if source.repo is None:
        say(f"{source.name!r} is {'built in code' if source.is_tiny else 'a local folder'}: nothing to download")
        return source
    locked = read_lock(data_dir).get(source.repo, {}).get("revision")
    if locked and not upgrade and (folder := cached_snapshot(source.repo, locked)) is not None:
        if not (missing := missing_parts(folder)):
            say(f"{source.repo} is downloaded (commit {locked[:12]}); `--upgrade` fetches a newer one")
            return ModelSource(name=source.name, preset=source.preset, repo=source.repo, revision=locked, folder=folder)
        say(f"{source.repo} at commit {locked[:12]} is incomplete here (missing or cut short: {_listed(missing)})")
    revision = locked if locked and not upgrade else (source.revision or "main")
    try:
        _remove_stale_partials(source.repo, cache_dir)
        plan = plan_download(source.repo, revision, cache_dir)
        _check_disk(plan, cache_dir)
        say(
            f"{source.repo} at commit {plan.commit[:12]}: {len(plan.files)} files, "
            f"{_gib(sum(plan.files.values()))} in all, {_gib(plan.missing_bytes)} to fetch"
        )
        folder = _fetch(source.repo, plan.commit, cache_dir)
        if missing := missing_parts(folder):
            raise DownloadFailed(
                f"{source.repo} at commit {plan.commit[:12]} is still incomplete after the download (missing or cut "
                f"short: {_listed(missing)}): the repo may lack them. Run the download again, or pick a preset."
            )
    except ModelUnavailable:
        raise
    except Exception as error:
        raise DownloadFailed(_explain(error, source, revision, locked=bool(locked and not upgrade))) from None
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


def _explain(error: BaseException, source: ModelSource, revision: str, *, locked: bool = False) -> str:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = source.repo
    cause: BaseException | None = error
    while cause is not None and not (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return (
            f"The disk filled up while downloading {name} into {constants.HF_HUB_CACHE}: {cause.strerror}.\n"
            "Free some space, or point HF_HOME at a larger disk, then run the download again (finished files are kept)."
        )
    # diffusers wraps the hub client's error in an OSError; the cause says what happened.
    chain: BaseException | None = error
    while chain is not None and not isinstance(chain, (OfflineModeIsEnabled, HfHubHTTPError)):
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
    if isinstance(error, RevisionNotFoundError) and locked:
        return (
            f"{name} no longer has commit {revision}, the one {LOCK_FILE} holds (its history was rewritten on the "
            f"hub).\nMove the lock to the repo's newest commit with:  {download_command(source.name)} --upgrade"
        )
    if isinstance(error, RevisionNotFoundError):
        return f"{name} has no revision {revision!r} on the hub."
    if isinstance(error, RepositoryNotFoundError):
        return f"There is no model {name!r} on the Hugging Face hub (or it is private: log in with `hf auth login`)."
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, HfHubHTTPError) and status in (401, 403):
        return (
            f"The Hugging Face hub refused {name} ({status}): log in with `hf auth login` (or set HF_TOKEN to a valid "
            "token) and, if the repo is gated, accept its licence on its page; then run the download again."
        )
    if _is_connection_error(error):
        return (
            f"Cannot reach the Hugging Face hub ({constants.ENDPOINT}) to download {name}: {_first_line(error)}\n"
            "Check the network (or HF_ENDPOINT), then run the same command again: finished files are kept."
        )
    return f"Downloading {name} failed: {type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 / 10 else f"{size / 1024**2:.1f} MiB"
