"""A local stand-in for the Hugging Face Hub's HTTP API, driven by the real `huggingface_hub` and `diffusers` clients.

Serve folders as model repos, point the clients at the server with the `fake_hub` fixture (import it into a conftest
or test module), then download as usual and assert on what was asked:

    def test_something(fake_hub, tmp_path):
        sha = fake_hub.add_repo("acme/tiny-ltx", save_tiny_pipeline(tmp_path / "v1", family="ltx"))
        folder = DiffusionPipeline.download("acme/tiny-ltx", cache_dir=tmp_path / "cache")
        assert Path(folder).name == sha
        fake_hub.add_commit("acme/tiny-ltx", other_folder)      # "main" moves on
        fake_hub.drop_after("diffusion_pytorch_model.safetensors", 1000)   # the next GET of it breaks mid-body
        fake_hub.stop()                                          # offline; fake_hub.start() brings it back

The server runs on its own thread and event loop, so the clients' blocking calls work from sync tests and from async
tests alike (no `asyncio.to_thread` needed) and from subprocesses given `fake_hub.environ(hf_home)`.
`FakeHub()` is also a context manager (`with` or `async with`) for a test that wants more than one hub.

What it answers, as huggingface_hub 2.4.0 asks for it (file_download.py, hf_api.py, _snapshot_download.py):
- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: model_info / repo_info / resolve_revision (the
  JSON `ModelInfo(**data)` reads: id, sha, siblings, lastModified, ...; siblings carry size, blobId and lfs only
  with `?blobs=true`, which `files_metadata=True` sends).
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...`: list_repo_tree, which snapshot_download calls after
  repo_info to learn the files of the commit.
- `POST /api/models/{repo}/paths-info/{rev}`: get_paths_info (HfFileSystem).
- `HEAD` / `GET /{repo}/resolve/{rev}/{path}`: hf_hub_download's metadata call, then the body. A regular file
  answers 200 with `ETag` (its git blob id), `Content-Length`, `X-Repo-Commit`, `Accept-Ranges`. An LFS file (by
  the hub's default .gitattributes patterns, or 10 MiB and over) answers 302 to a second port, the "CDN", with
  `X-Linked-Etag` (its sha256) and `X-Linked-Size`, like the real hub; the client treats that port as another
  host and downloads from it. Both serve `Range: bytes=N-` with 206.
- Unknown repo, revision or file: 404 with `X-Error-Code` RepoNotFound / RevisionNotFound / EntryNotFound and
  `X-Error-Message`, which the client turns into RepositoryNotFoundError / RevisionNotFoundError /
  RemoteEntryNotFoundError. No Xet header is ever sent, so every download is plain HTTP.

Every request is logged in `requests` (`HubRequest`: method, path, range, file). `drop_after(suffix, nbytes)` closes
the connection after nbytes of the next matching body. huggingface_hub's `http_get` retries a broken body within the
same call (1 s apart; up to 5 more tries after a break, none of them receiving a byte) with `Range: bytes=N-`, where
N counts only whole chunks of
`constants.DOWNLOAD_CHUNK_SIZE` (10 MiB) already written: a file broken inside its first 10 MiB restarts from 0.
A call that gives up deletes its partial file, so nothing resumes across calls. See tests/foundation/test_fake_hub.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from aiohttp import web

__all__ = ["FakeHub", "HubRequest", "fake_hub", "hub_environ", "point_clients_at"]

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
# The hub's default .gitattributes sends these to LFS; the hub also refuses non-LFS files of 10 MiB and over.
_LFS_SUFFIXES = frozenset(
    ".7z .arrow .bin .bz2 .ckpt .ftz .gz .h5 .joblib .mlmodel .model .msgpack .npy .npz .onnx .ot .parquet .pb "
    ".pickle .pkl .pt .pth .rar .safetensors .tar .tflite .tgz .wasm .xz .zip .zst".split()
)
_LFS_MIN_SIZE = 10 * 1024 * 1024
_FIRST_COMMIT_DATE = datetime(2024, 1, 1, tzinfo=UTC)
_WRITE_PIECE = 256 * 1024
_SITE = web.AppKey("site", str)  # "hub" or "cdn"


@dataclass(frozen=True)
class RepoEntry:
    """One file of one commit, held in memory (a commit's content must not change when its folder does)."""

    path: str
    data: bytes
    git_oid: str  # the blob id git gives the file itself, or its LFS pointer
    sha256: str | None  # set for LFS files
    pointer_size: int | None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def etag(self) -> str:
        return self.sha256 or self.git_oid


@dataclass
class Commit:
    sha: str
    date: datetime
    files: dict[str, RepoEntry]

    def folders(self) -> set[str]:
        return {str(parent) for path in self.files for parent in PurePosixPath(path).parents if str(parent) != "."}


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha

    def commit(self, revision: str) -> Commit | None:
        sha = self.refs.get(revision, revision)
        return next((commit for commit in self.commits if commit.sha == sha), None)


@dataclass
class HubRequest:
    """A request the hub (or its CDN port) received."""

    method: str
    site: str  # "hub" or "cdn"
    path: str  # URL path, percent-decoded
    query: Mapping[str, str]
    range: str | None  # the Range header as sent, e.g. "bytes=10485760-"
    file: str | None = None  # the repo file a resolve or CDN request is for
    status: int | None = None  # filled in once answered; None if the connection was dropped mid-body


@dataclass
class _Drop:
    suffix: str
    nbytes: int
    times: int


class _NotFound(Exception):
    def __init__(self, code: str, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.commit = code, message, commit


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(path: str, size: int) -> bool:
    return PurePosixPath(path).suffix in _LFS_SUFFIXES or size >= _LFS_MIN_SIZE


def _entry(path: str, data: bytes) -> RepoEntry:
    if not _is_lfs(path, len(data)):
        return RepoEntry(path, data, _git_blob_oid(data), None, None)
    sha256 = hashlib.sha256(data).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
    return RepoEntry(path, data, _git_blob_oid(pointer), sha256, len(pointer))


def _read_folder(folder: Path) -> dict[str, RepoEntry]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"fake hub: {folder} is not a folder")
    files = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and ".git" not in file.relative_to(folder).parts:
            path = file.relative_to(folder).as_posix()
            files[path] = _entry(path, file.read_bytes())
    return files


def _iso(date: datetime) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _query_flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


class FakeHub:
    """An aiohttp server on 127.0.0.1 (free ports: the hub, and its "CDN") that answers like huggingface.co."""

    def __init__(self) -> None:
        self.requests: list[HubRequest] = []
        self._repos: dict[str, Repo] = {}
        self._drops: list[_Drop] = []
        self._lock = threading.Lock()
        self._ports: tuple[int, int] = (0, 0)  # kept across stop/start, so a restarted hub is the same endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """What HF_ENDPOINT (and `huggingface_hub.constants.ENDPOINT`) should be."""
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def cdn_endpoint(self) -> str:
        """Where LFS files are redirected to: another port, so the client treats it as another host."""
        return f"http://127.0.0.1:{self._ports[1]}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def environ(self, hf_home: Path) -> dict[str, str]:
        """Environment for a subprocess that should use this hub and a private HF_HOME (merge it into os.environ)."""
        return hub_environ(self.endpoint, hf_home)

    # -- repos -----------------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, folder: Path, commit: str | None = None) -> str:
        """Serve `folder` as model repo `repo_id` with "main" at one commit; returns the sha (derived if not given)."""
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"fake hub: {repo_id} exists; publish with add_commit")
            self._repos[repo_id] = Repo(repo_id)
        return self.add_commit(repo_id, folder, commit)

    def add_commit(self, repo_id: str, folder: Path, commit: str | None = None) -> str:
        """Publish `folder` as a new commit of `repo_id` and move "main" to it; returns its sha."""
        files = _read_folder(folder)
        with self._lock:
            repo = self._repos[repo_id]
            parent = repo.refs.get("main", "")
            if commit is None:
                listing = "".join(f"{path}\0{entry.git_oid}\n" for path, entry in sorted(files.items()))
                commit = hashlib.sha1(f"{repo_id}\n{parent}\n{listing}".encode()).hexdigest()
            if not _COMMIT_SHA.fullmatch(commit):
                raise ValueError(f"fake hub: a commit is 40 lowercase hex digits, not {commit!r}")
            if repo.commit(commit) is not None:
                raise ValueError(f"fake hub: {repo_id} already has commit {commit}")
            date = _FIRST_COMMIT_DATE + timedelta(minutes=sum(len(r.commits) for r in self._repos.values()))
            repo.commits.append(Commit(commit, date, files))
            repo.refs["main"] = commit
        return commit

    def set_ref(self, repo_id: str, name: str, commit: str) -> None:
        """Point branch or tag `name` of `repo_id` at an existing commit (e.g. move "main" back)."""
        with self._lock:
            repo = self._repos[repo_id]
            if repo.commit(commit) is None:
                raise ValueError(f"fake hub: {repo_id} has no commit {commit}")
            repo.refs[name] = commit

    def commit_of(self, repo_id: str, revision: str = "main") -> str:
        """The sha `revision` of `repo_id` resolves to now."""
        found = self._repos[repo_id].commit(revision)
        if found is None:
            raise KeyError(f"fake hub: {repo_id} has no revision {revision}")
        return found.sha

    # -- failures and the log --------------------------------------------------------------------------------

    def drop_after(self, path_suffix: str, nbytes: int, times: int = 1) -> None:
        """Close the connection after nbytes of the body of the next `times` GETs of a file ending in `path_suffix`.

        nbytes counts from the start of that response's body (for a Range request, from the range's start); a rule
        whose nbytes reaches the end of the body sends it whole. Rules are used in the order they were added.
        """
        with self._lock:
            self._drops.append(_Drop(path_suffix, nbytes, times))

    def requests_for(self, path_suffix: str, method: str | None = None) -> list[HubRequest]:
        """Logged requests for a repo file ending in `path_suffix` (resolve and CDN alike), optionally one method."""
        return [
            request
            for request in list(self.requests)
            if request.file is not None
            and request.file.endswith(path_suffix)
            and (method is None or request.method == method)
        ]

    def _take_drop(self, path: str) -> int | None:
        with self._lock:
            for drop in self._drops:
                if drop.times > 0 and path.endswith(drop.suffix):
                    drop.times -= 1
                    return drop.nbytes
        return None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving (on the same ports as before, after a stop)."""
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-hub", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_sites(), loop).result(timeout=10)
        except BaseException:
            asyncio.run_coroutine_threadsafe(self._cleanup(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            raise
        self._loop, self._thread = loop, thread

    def stop(self) -> None:
        """Stop serving: connections are refused, as with the hub unreachable."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._cleanup(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FakeHub:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeHub:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    async def _start_sites(self) -> None:
        ports = []
        for site_name, wanted in zip(("hub", "cdn"), self._ports, strict=True):
            app = web.Application()
            app[_SITE] = site_name
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None, handle_signals=False)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", wanted, reuse_address=True).start()
            ports.append(runner.addresses[0][1])
        self._ports = (ports[0], ports[1])

    async def _cleanup(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    # -- routing ---------------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        site = request.app[_SITE]
        parts = [unquote(part) for part in request.rel_url.raw_path.split("/") if part]
        logged = HubRequest(
            request.method, site, "/" + "/".join(parts), dict(request.query), request.headers.get("Range")
        )
        self.requests.append(logged)
        try:
            response = await self._route(request, site, parts, logged)
        except _NotFound as error:
            response = _error(error)
        except web.HTTPException as error:
            logged.status = error.status
            raise
        if logged.status is None and response.prepared is False:
            logged.status = response.status
        return response

    async def _route(self, request: web.Request, site: str, parts: list[str], logged: HubRequest) -> web.StreamResponse:
        if site == "cdn":
            # /lfs/{sha256}/{path in repo}: the path only names the file, as a signed CDN URL's filename does
            if len(parts) >= 3 and parts[0] == "lfs" and request.method in ("GET", "HEAD"):
                logged.file = "/".join(parts[2:])
                entry = self._lfs_blob(parts[1])
                return await self._serve_bytes(request, entry, logged, {"ETag": f'"{entry.etag}"'})
            raise web.HTTPNotFound()
        if parts[:2] == ["api", "models"] and len(parts) >= 3:
            repo, rest = self._split_repo(parts[2:])
            if not rest and request.method == "GET":
                return self._model_info(request, repo, "main")
            if len(rest) == 2 and rest[0] == "revision" and request.method == "GET":
                return self._model_info(request, repo, rest[1])
            if len(rest) >= 2 and rest[0] == "tree" and request.method == "GET":
                return self._tree(request, repo, rest[1], "/".join(rest[2:]))
            if len(rest) == 2 and rest[0] == "paths-info" and request.method == "POST":
                return await self._paths_info(request, repo, rest[1])
            raise web.HTTPNotFound()
        if len(parts) >= 3 and request.method in ("GET", "HEAD"):
            repo, rest = self._split_repo(parts)
            if len(rest) >= 3 and rest[0] == "resolve":
                logged.file = "/".join(rest[2:])
                return await self._resolve(request, repo, rest[1], logged.file, logged)
        raise web.HTTPNotFound()

    def _split_repo(self, parts: list[str]) -> tuple[Repo, list[str]]:
        """The repo a path names (`ns/name`, or a legacy one-part id) and the rest of the path."""
        with self._lock:
            for length in (2, 1):
                repo = self._repos.get("/".join(parts[:length]))
                if repo is not None and len(parts) >= length:
                    return repo, parts[length:]
        raise _NotFound("RepoNotFound", "Repository not found")

    def _commit(self, repo: Repo, revision: str) -> Commit:
        with self._lock:
            commit = repo.commit(revision)
        if commit is None:
            raise _NotFound("RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _lfs_blob(self, sha256: str) -> RepoEntry:
        with self._lock:
            for repo in self._repos.values():
                for commit in repo.commits:
                    for entry in commit.files.values():
                        if entry.sha256 == sha256:
                            return entry
        raise web.HTTPNotFound()

    # -- handlers --------------------------------------------------------------------------------------------

    def _model_info(self, request: web.Request, repo: Repo, revision: str) -> web.Response:
        commit = self._commit(repo, revision)
        blobs = _query_flag(request.query.get("blobs"))
        siblings = []
        for entry in commit.files.values():
            sibling: dict[str, Any] = {"rfilename": entry.path}
            if blobs:
                sibling.update(blobId=entry.git_oid, size=entry.size)
                if entry.sha256 is not None:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        namespace = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": namespace,
            "sha": commit.sha,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(repo.commits[0].date),
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["diffusers", "safetensors"],
            "library_name": "diffusers",
            "siblings": siblings,
            "usedStorage": sum(entry.size for entry in commit.files.values()),
        }
        model_index = commit.files.get("model_index.json")
        if model_index is not None:
            try:
                info["config"] = {"diffusers": {"_class_name": json.loads(model_index.data).get("_class_name")}}
            except ValueError:
                pass
        return web.json_response(info)

    def _tree(self, request: web.Request, repo: Repo, revision: str, folder: str) -> web.Response:
        commit = self._commit(repo, revision)
        folders = commit.folders()
        if folder and folder not in folders:
            raise _NotFound("EntryNotFound", f"{folder} does not exist on {revision}", commit.sha)
        recursive = _query_flag(request.query.get("recursive"))
        expand = _query_flag(request.query.get("expand"))
        prefix = f"{folder}/" if folder else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        items = [_folder_info(path, commit, expand) for path in sorted(folders) if wanted(path)]
        items += [_file_info(entry, commit, expand) for path, entry in sorted(commit.files.items()) if wanted(path)]
        return web.json_response(items)

    async def _paths_info(self, request: web.Request, repo: Repo, revision: str) -> web.Response:
        commit = self._commit(repo, revision)
        form = await request.post()
        expand = _query_flag(str(form.get("expand", "")))
        folders = commit.folders()
        items = []
        for path in form.getall("paths", []):
            path = str(path).strip("/")
            if path in commit.files:
                items.append(_file_info(commit.files[path], commit, expand))
            elif path in folders:
                items.append(_folder_info(path, commit, expand))
        return web.json_response(items)

    async def _resolve(
        self, request: web.Request, repo: Repo, revision: str, path: str, logged: HubRequest
    ) -> web.StreamResponse:
        commit = self._commit(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            raise _NotFound("EntryNotFound", "Entry not found", commit.sha)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{entry.etag}"'}
        if entry.sha256 is None:
            return await self._serve_bytes(request, entry, logged, headers)
        location = f"{self.cdn_endpoint}/lfs/{entry.sha256}/{quote(path)}"
        headers.update({"Location": location, "X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        return web.Response(status=302, headers=headers, text=f"Found. Redirecting to {location}")

    async def _serve_bytes(
        self, request: web.Request, entry: RepoEntry, logged: HubRequest, headers: dict[str, str]
    ) -> web.StreamResponse:
        size = entry.size
        start, end = 0, size - 1
        status = 200
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        wanted = request.headers.get("Range")
        if wanted is not None:
            parsed = _parse_range(wanted, size)
            if parsed is None:
                return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(end - start + 1, 0)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length
        if request.method == "HEAD":  # what a GET would get, without the body
            await response.prepare(request)
            logged.status = status
            return response
        drop = self._take_drop(entry.path)
        await response.prepare(request)
        limit = length if drop is None else min(drop, length)
        for offset in range(start, start + limit, _WRITE_PIECE):
            await response.write(entry.data[offset : min(offset + _WRITE_PIECE, start + limit)])
        if drop is not None:
            # Closing flushes what was written, then the client sees a body shorter than Content-Length.
            assert request.transport is not None
            request.transport.close()
            return response
        logged.status = status
        await response.write_eof()
        return response


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), (min(int(last), size - 1) if last else size - 1)
    if start >= size or start > end:
        return None
    return start, end


def _file_info(entry: RepoEntry, commit: Commit, expand: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": entry.path}
    if entry.sha256 is not None:
        info["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if expand:
        info["lastCommit"] = {"id": commit.sha, "title": "Upload folder", "date": _iso(commit.date)}
    return info


def _folder_info(path: str, commit: Commit, expand: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "directory",
        "oid": hashlib.sha1(f"{commit.sha}:{path}".encode()).hexdigest(),
        "size": 0,
        "path": path,
    }
    if expand:
        info["lastCommit"] = {"id": commit.sha, "title": "Upload folder", "date": _iso(commit.date)}
    return info


def _error(error: _NotFound) -> web.Response:
    headers = {"X-Error-Code": error.code, "X-Error-Message": error.message}
    if error.commit is not None:
        headers["X-Repo-Commit"] = error.commit
    return web.json_response({"error": error.message}, status=404, headers=headers)


# -- pointing the clients at it --------------------------------------------------------------------------------


def hub_environ(endpoint: str, hf_home: Path) -> dict[str, str]:
    """The variables that point a fresh process's huggingface_hub at `endpoint`, with a private HF_HOME and no token."""
    return {
        "HF_ENDPOINT": endpoint.rstrip("/"),
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(Path(hf_home) / "hub"),
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_TOKEN": "",  # empty means none; it also hides HUGGING_FACE_HUB_TOKEN
        "HF_OIDC_RESOURCE": "",
        "DO_NOT_TRACK": "1",
    }


def point_clients_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    """Make huggingface_hub (and diffusers and transformers through it) use `endpoint` and a private HF_HOME.

    huggingface_hub reads HF_ENDPOINT once, at import, into `constants.ENDPOINT` and values built from it: the
    download URL template, the hub hosts whose redirects it follows with auth, and the module-level `HfApi` behind
    `model_info`, `list_repo_tree`, `resolve_revision` (which diffusers calls). Setting the variable in a running
    process changes none of them, so each is patched here; the variables are set too, for subprocesses.
    """
    import huggingface_hub
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http, close_session

    endpoint = endpoint.rstrip("/")
    hf_home = Path(hf_home)
    hf_home.mkdir(parents=True, exist_ok=True)
    for name, value in hub_environ(endpoint, hf_home).items():
        monkeypatch.setenv(name, value)

    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    if "HUGGINGFACE_CO_URL_TEMPLATE" in vars(huggingface_hub):  # the lazy export, once something read it
        monkeypatch.setattr(huggingface_hub, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {urlsplit(endpoint).hostname or ""})
    monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(endpoint)})
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)

    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(hf_home / "assets"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(hf_home / "xet"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)

    # diffusers keeps its own copy, only for error messages; patched so they name the fake hub.
    from diffusers import configuration_utils, utils
    from diffusers.utils import constants as diffusers_constants
    from diffusers.utils import hub_utils

    for module in (diffusers_constants, utils, hub_utils, configuration_utils):
        if hasattr(module, "HUGGINGFACE_CO_RESOLVE_ENDPOINT"):
            monkeypatch.setattr(module, "HUGGINGFACE_CO_RESOLVE_ENDPOINT", endpoint)

    # The shared HTTP client pools connections per host: start and end each test with a fresh one.
    close_session()


@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """huggingface_hub's retry sleeps, recorded instead of slept (both modules use nothing else of `time`)."""
    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    waits: list[float] = []
    instant = SimpleNamespace(sleep=waits.append)
    monkeypatch.setattr(file_download, "time", instant)
    monkeypatch.setattr(_http, "time", instant)
    return waits


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A running FakeHub, with huggingface_hub and diffusers pointed at it and HF_HOME in tmp_path/"hf-home"."""
    from huggingface_hub.utils import close_session

    hub = FakeHub()
    hub.start()
    try:
        point_clients_at(monkeypatch, hub.endpoint, tmp_path / "hf-home")
        yield hub
    finally:
        close_session()
        hub.stop()
