"""The HTTP face of the generator: OpenAI's Videos API (`/v1/videos…`) and `/healthz`.

Handlers parse the request, call `Videos`, and render the result; every error leaves in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from generator.catalog import SAME_SUBJECT
from generator.errors import APIError, invalid, unauthorized
from generator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from generator.models import CANCELLED, FAILED, QUEUED, UNFINISHED, Character, StoredFile
from generator.params import (
    CreateCharacterBody,
    CreateFileBody,
    CreateVideoBody,
    EditVideoBody,
    ExtendVideoBody,
    RemixVideoBody,
    parse_body,
)
from generator.settings import GeneratorSettings
from generator.videos import MAX_HOLD_SECONDS, Upload, Videos, VideoView
from hanul_core.logs import REQUEST_ID, track_request_ids

log = logging.getLogger(__name__)

VIDEOS = web.AppKey("videos", Videos)
SETTINGS = web.AppKey("settings", GeneratorSettings)
HEALTH = web.AppKey("health", Callable[[], Awaitable[dict[str, Any]]])
METRICS = web.AppKey("metrics", Callable[[], Awaitable[bytes]])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
POLL_AFTER_MS = 500  # the SDK's poll helper reads openai-poll-after-ms
LONGEST_POLL_AFTER_MS = 5000
OFF_LOOP_JSON_BYTES = 1024 * 1024  # JSON bodies larger than this are parsed on a thread
HELD_HEADER = "hanul-wait"  # on answers to `?wait=`: the answer was held until the job changed (or the wait ended)
REQUEST_ID_HEADER = "x-request-id"  # on every answer, errors included, and on the log lines of its request


def video_json(view: VideoView) -> dict[str, Any]:
    """The SDK's `Video` object, plus Hanul's extra fields (seed, lineage, queue position, ETA)."""
    job = view.job
    failed = job.status in (FAILED, CANCELLED)
    return {
        "id": job.id,
        "object": "video",
        "created_at": int(job.created_at.timestamp()),
        "completed_at": int(job.completed_at.timestamp()) if job.completed_at else None,
        "expires_at": None,
        "model": job.model,
        "progress": job.progress,
        "prompt": job.prompt,
        "remixed_from_video_id": job.remixed_from_id,
        "seconds": job.seconds,
        "size": job.size,  # as asked (the spec's default when none was)
        "status": FAILED if failed else job.status,
        "error": {"code": job.error_code or "failed", "message": job.error_message or "Failed."} if failed else None,
        "seed": job.seed,
        "negative_prompt": job.negative_prompt,
        "kind": job.kind,
        "parent_video_id": job.parent_id,
        "user": job.user,
        "fps": job.params.get("fps"),
        "rendered_size": f"{job.params['width']}x{job.params['height']}" if "width" in job.params else job.size,
        "characters": job.params.get("characters", []),
        "strength": job.params.get("strength"),
        "prompt_tokens": job.timings.get("prompt_tokens"),
        "prompt_tokens_used": job.timings.get("prompt_tokens_used"),
        "prompt_truncated": (
            job.timings["prompt_tokens_used"] < job.timings["prompt_tokens"] if "prompt_tokens" in job.timings else None
        ),
        "queue_position": view.queue_position,
        "eta_seconds": view.eta_seconds,
        "has_audio": job.artifact("audio") is not None,  # the MP4 carries sound (known once it is rendered)
        "preview_at": int(preview.created_at.timestamp()) if (preview := job.artifact("preview")) else None,
    }


def character_json(character: Character) -> dict[str, Any]:
    """The SDK's character object (`id`, `created_at`, `name`), plus Hanul's: owner, description, frames."""
    return {
        "id": character.id,
        "object": "character",
        "created_at": int(character.created_at.timestamp()),
        "name": character.name,
        "user": character.user,
        "description": character.description,
        "source": character.source,
        "reference_frames": len(character.frames),
    }


def file_json(row: StoredFile) -> dict[str, Any]:
    """The SDK's `FileObject`."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": int(row.created_at.timestamp()),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _error_response(error: APIError) -> web.Response:
    return _json(error.body(), status=error.status, headers=error.headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Name every request (`x-request-id` on its answer, and on every log line written while serving it)."""
    request_id = f"req_{uuid.uuid4().hex}"
    token = REQUEST_ID.set(request_id)
    try:
        response = await handler(request)
    except web.HTTPException as passed_on:  # redirects and the like, which error_middleware lets through
        passed_on.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        REQUEST_ID.reset(token)
    if not response.prepared:  # a streamed answer has sent its headers already (it sets the id itself)
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


DATABASE_RETRY_AFTER_S = 2  # what a 503 for an unavailable database asks clients to wait


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes OpenAI's error shape; unexpected ones are logged and never leak details."""
    try:
        return await handler(request)
    except APIError as error:
        response = _error_response(error)
        if error.status == 408:  # the rest of a body that stopped arriving is not waited for
            response.force_close()
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(error.status)
        message = {
            404: f"Unknown path: {request.method} {request.path[:100]}",
            413: "The request body is too large.",
        }.get(error.status, error.reason)
        return _error_response(APIError(error.status, message, code=code))
    except (OperationalError, InterfaceError, PoolTimeout, ConnectionError) as error:
        # The job database cannot be reached or written for now (restarting, locked by another writer): nothing was
        # done, and the request can be sent again, as clients do on a 503 (the bot and the openai SDK).
        log.warning("database unavailable in %s %s: %s", request.method, request.path[:200], type(error).__name__)
        return _error_response(
            APIError(
                503,
                "The job database is unavailable for the moment; retry shortly.",
                type="server_error",
                code="database_unavailable",
                headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
            )
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path[:200])
        return _error_response(APIError(500, "The server had an error processing the request.", type="server_error"))


def auth_middleware(api_key: str | None) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    expected = f"Bearer {api_key}".encode() if api_key else None

    @web.middleware
    async def check_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is not None and request.path != "/healthz":
            given = _header_bytes(request, "Authorization")
            if not hmac.compare_digest(given, expected):
                raise unauthorized()
        return await handler(request)

    return check_key


def _header_bytes(request: web.Request, name: str) -> bytes:
    """A header's bytes as sent (aiohttp keeps bytes that are not UTF-8 as surrogate escapes)."""
    return request.headers.get(name, "").encode("utf-8", "surrogateescape")


# --- request bodies --------------------------------------------------------------------------------


MAX_PARTS = 64  # multipart parts or form fields in one body: the endpoints take about fifteen


@dataclass(frozen=True)
class BodyLimits:
    """What one request body may be: its bytes, how long it may take to arrive, the fields and file it may carry."""

    max_bytes: int
    timeout: float
    fields: frozenset[str]
    file: str | None = None


def body_limits(request: web.Request, body: type[BaseModel], file: str | None = None) -> BodyLimits:
    settings = request.app[SETTINGS]
    return BodyLimits(settings.max_request_bytes, settings.body_timeout, frozenset(body.model_fields), file)


async def read_body(request: web.Request, limits: BodyLimits) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Fields and files of a JSON, multipart or urlencoded body (`a[b]` form keys become nested dicts).

    A body that has not arrived within `limits.timeout` seconds is refused with 408 and its connection closed; a
    form's unknown field or file is refused as soon as its part begins, not after the whole body has been read."""
    try:
        async with asyncio.timeout(limits.timeout):
            return await _read_body(request, limits)
    except TimeoutError:
        raise APIError(
            408, f"The request body did not arrive within {limits.timeout:g} s.", code="request_timeout"
        ) from None


async def _read_body(request: web.Request, limits: BodyLimits) -> tuple[dict[str, Any], dict[str, Upload]]:
    content_type = request.content_type
    if content_type == "application/json":
        raw = await request.read()
        try:
            if len(raw) > OFF_LOOP_JSON_BYTES:  # parsing tens of MB would hold the event loop for a second
                data = await asyncio.to_thread(json.loads, raw or b"null")
            else:
                data = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            raise invalid(None, "The request body is not valid JSON.", code="invalid_json") from None
        if not isinstance(data, dict):
            raise invalid(None, "The request body must be a JSON object.", code="invalid_json")
        return data, {}
    if content_type == "multipart/form-data":
        return await _read_multipart(request, limits)
    if content_type == "application/x-www-form-urlencoded":
        return _read_urlencoded(await request.read(), request.charset, limits), {}
    raise invalid(None, "Send the body as application/json or multipart/form-data.", code="unsupported_content_type")


def _read_urlencoded(raw: bytes, charset: str | None, limits: BodyLimits) -> dict[str, Any]:
    """A form body: text in its charset (UTF-8 unless it says otherwise), percent-escapes decoded as UTF-8."""
    try:
        text = raw.decode(charset or "utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_PARTS)
    except (UnicodeDecodeError, LookupError):
        raise invalid(None, "The form body is not valid UTF-8 text.", code="invalid_form") from None
    except ValueError:  # parse_qsl: more than max_num_fields
        raise invalid(None, f"The form has more than {MAX_PARTS} fields.", code="too_many_fields") from None
    fields: dict[str, Any] = {}
    for name, value in pairs:
        _check_field_name(name, limits, is_file=False)
        _add_field(fields, name, value)
    return _nest(fields)


def _add_field(fields: dict[str, Any], name: str, value: str) -> None:
    """One form field; `name[]` fields (the openai SDK's lists, e.g. `characters[]`) gather into a list."""
    if name.endswith("[]"):
        fields.setdefault(name[:-2], [])
        if not isinstance(fields[name[:-2]], list):
            raise invalid(name[:60], f"'{name[:-2][:60]}' was sent both as a list and as one value.")
        fields[name[:-2]].append(value)
    else:
        fields[name] = value


def _check_field_name(name: str, limits: BodyLimits, *, is_file: bool) -> None:
    """Refuse a part the endpoint does not take, by its name alone (before its data is read)."""
    if is_file:
        if name != limits.file:
            raise invalid(name[:60], f"Unknown file parameter: '{name[:60]}'.", code="unknown_parameter")
        return
    outer = name.split("[", 1)[0] if name.endswith("]") else name
    if outer not in limits.fields:
        raise invalid(name[:60], f"Unknown parameter: '{name[:60]}'.", code="unknown_parameter")


async def _read_multipart(request: web.Request, limits: BodyLimits) -> tuple[dict[str, Any], dict[str, Upload]]:
    fields: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    total = parts = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > MAX_PARTS:
                raise invalid(None, f"The form has more than {MAX_PARTS} parts.", code="too_many_fields")
            if not isinstance(part, BodyPartReader) or not part.name:
                raise invalid(None, "Every multipart part needs a name.", code="invalid_multipart")
            _check_field_name(part.name, limits, is_file=part.filename is not None)
            chunks = []
            while chunk := await part.read_chunk(64 * 1024):
                total += len(chunk)
                if total > limits.max_bytes:
                    raise APIError(413, "The request body is too large.", code="request_too_large")
                chunks.append(chunk)
            data = b"".join(chunks)
            if part.filename is not None:
                files[part.name] = Upload(part.filename, part.headers.get("Content-Type", ""), data)
            else:
                try:
                    text = data.decode(part.get_charset("utf-8"))
                except (UnicodeDecodeError, LookupError):
                    raise invalid(part.name, f"Field '{part.name}' is not valid UTF-8 text.") from None
                _add_field(fields, part.name, text)
            # Parts already buffered are read without suspending: let other requests (/healthz) run between parts.
            await asyncio.sleep(0)
    except APIError:
        raise
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError):  # e.g. a part's headers cut off
        raise invalid(None, "The multipart body is malformed.", code="invalid_multipart") from None
    return _nest(fields), files


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"video[id]": "x"} → {"video": {"id": "x"}}, as the openai SDK encodes nested fields in forms."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key.endswith("]") and "[" in key:
            outer, inner = key[:-1].split("[", 1)
            target = nested.setdefault(outer, {})
            if not isinstance(target, dict) or "[" in inner:
                raise invalid(key, f"Unsupported nested field '{key[:60]}'.")
            target[inner] = value
        else:
            nested[key] = value
    return nested


def _refuse_files(files: dict[str, Upload]) -> None:
    """400 for any file part the endpoint does not take."""
    if files:
        unknown = next(iter(files))
        raise invalid(unknown, f"Unknown file parameter: '{unknown[:60]}'.", code="unknown_parameter")


def _take_file(files: dict[str, Upload], fields: dict[str, Any], name: str) -> Upload | None:
    """The one file part `name` the endpoint takes (others are refused)."""
    upload = files.pop(name, None)
    _refuse_files(files)
    if upload is not None and name in fields:
        raise invalid(name, f"'{name}' was sent both as a file and as a field.")
    return upload


def client_bucket(request: web.Request) -> str:
    """Who a request counts against when it names no `user`: the API key it presented (hashed), or, on a server
    without a key, the address it came from."""
    if request.app[SETTINGS].api_key is not None:
        presented = _header_bytes(request, "Authorization")
        return "key:" + hashlib.sha256(presented).hexdigest()[:32]
    return f"address:{request.remote or 'unknown'}"


def idempotency_key(request: web.Request) -> str | None:
    """The client's Idempotency-Key header: a retried POST with the same key returns the first job."""
    key = request.headers.get("Idempotency-Key")
    if key is None or key == "":
        return None
    if len(key) > 200 or not key.isprintable():
        raise invalid("Idempotency-Key", "The Idempotency-Key header must be at most 200 printable characters.")
    return key


# --- handlers --------------------------------------------------------------------------------------


async def create_video(request: web.Request) -> web.Response:
    fields, files = await read_body(request, body_limits(request, CreateVideoBody, "input_reference"))
    upload = _take_file(files, fields, "input_reference")
    body = parse_body(CreateVideoBody, fields)
    view = await request.app[VIDEOS].create(body, upload, idempotency_key(request), client_bucket(request))
    return _json(video_json(view))


async def extend_video(request: web.Request) -> web.Response:
    fields, files = await read_body(request, body_limits(request, ExtendVideoBody, "video"))
    upload = _take_file(files, fields, "video")
    body = parse_body(ExtendVideoBody, fields)
    view = await request.app[VIDEOS].extend(body, upload, idempotency_key(request), client_bucket(request))
    return _json(video_json(view))


async def edit_video(request: web.Request) -> web.Response:
    fields, files = await read_body(request, body_limits(request, EditVideoBody, "video"))
    upload = _take_file(files, fields, "video")
    body = parse_body(EditVideoBody, fields)
    view = await request.app[VIDEOS].edit(body, upload, idempotency_key(request), client_bucket(request))
    return _json(video_json(view))


async def create_character(request: web.Request) -> web.Response:
    fields, files = await read_body(request, body_limits(request, CreateCharacterBody, "video"))
    upload = _take_file(files, fields, "video")
    body = parse_body(CreateCharacterBody, fields)
    return _json(character_json(await request.app[VIDEOS].create_character(body, upload)))


async def retrieve_character(request: web.Request) -> web.Response:
    return _json(character_json(await request.app[VIDEOS].characters.get(request.match_info["character_id"])))


async def list_characters(request: web.Request) -> web.Response:
    query = list_query(request)
    rows, has_more = await request.app[VIDEOS].characters.list(
        after=query.after, limit=query.limit, order=query.order, user=query.filters["user"]
    )
    return _list_json([character_json(row) for row in rows], has_more)


async def delete_character(request: web.Request) -> web.Response:
    character = await request.app[VIDEOS].characters.delete(request.match_info["character_id"])
    return _json({"id": character.id, "object": "character.deleted", "deleted": True})


async def character_frame(request: web.Request) -> web.StreamResponse:
    """A character's reference frame as PNG (`?index=N`, best first; 0 by default)."""
    for name in request.query:
        if name != "index":
            raise invalid(name, f"Unknown query parameter: '{name[:60]}'.", code="unknown_parameter")
    raw = request.query.get("index", "0")
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit() takes "²", which int() refuses
        raise invalid("index", f"Invalid 'index': '{raw[:20]}' is not a frame number.")
    characters = request.app[VIDEOS].characters
    character = await characters.get(request.match_info["character_id"])
    path = characters.frame_path(character, int(raw))
    return web.FileResponse(path, headers={"Content-Type": "image/png", "Cache-Control": "private, max-age=60"})


async def create_file(request: web.Request) -> web.Response:
    fields, files = await read_body(request, body_limits(request, CreateFileBody, "file"))
    upload = _take_file(files, fields, "file")
    body = parse_body(CreateFileBody, fields)
    if upload is None:
        raise invalid("file", "Missing required parameter: 'file' (the file itself, as a multipart file part).")
    stored = await request.app[VIDEOS].files.create(body.purpose, upload.filename, upload.content_type, upload.data)
    return _json(file_json(stored))


async def retrieve_file(request: web.Request) -> web.Response:
    return _json(file_json(await request.app[VIDEOS].files.get(request.match_info["file_id"])))


async def list_files(request: web.Request) -> web.Response:
    query = list_query(request, filters=("purpose",), most=10_000)
    rows, has_more = await request.app[VIDEOS].files.list(
        after=query.after, limit=query.limit, order=query.order, purpose=query.filters["purpose"]
    )
    return _list_json([file_json(row) for row in rows], has_more)


async def delete_file(request: web.Request) -> web.Response:
    row = await request.app[VIDEOS].files.delete(request.match_info["file_id"])
    return _json({"id": row.id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.StreamResponse:
    files = request.app[VIDEOS].files
    row = await files.get(request.match_info["file_id"])
    return web.FileResponse(files.path(row), headers={"Content-Type": row.content_type})


async def remix_video(request: web.Request) -> web.Response:
    fields, files = await read_body(request, body_limits(request, RemixVideoBody))
    _refuse_files(files)
    body = parse_body(RemixVideoBody, fields)
    videos = request.app[VIDEOS]
    view = await videos.remix(request.match_info["video_id"], body, idempotency_key(request), client_bucket(request))
    return _json(video_json(view))


async def retrieve_video(request: web.Request) -> web.Response:
    """With `?wait=S` (Hanul's addition), an unfinished job's answer is held up to S seconds until its state differs
    from `seen=status:progress:queue_position` (what the client last saw; by default, the state when asked)."""
    wait = _hold_seconds(request)
    view = await request.app[VIDEOS].get(request.match_info["video_id"], wait=wait, seen=request.query.get("seen"))
    headers = {"openai-poll-after-ms": str(poll_after_ms(view))} if view.job.status in UNFINISHED else {}
    if wait > 0:
        headers[HELD_HEADER] = f"{wait:g}"  # tells the client this answer was held: it may ask again at once
    return _json(video_json(view), headers=headers)


def poll_after_ms(view: VideoView) -> int:
    """How long a poller should wait before asking again: half a second while the job renders (its progress
    moves), longer for a job far back in the queue: a quarter of its estimated wait, at most 5 s. Hundreds of
    SDK clients polling a long queue every half second would otherwise take the CPU time the workers need to
    keep the GPU fed (the openai SDK's `poll` and `create_and_poll` follow this header)."""
    if view.job.status == QUEUED and view.eta_seconds:
        return round(min(LONGEST_POLL_AFTER_MS, max(POLL_AFTER_MS, view.eta_seconds * 1000 / 4)))
    return POLL_AFTER_MS


def _hold_seconds(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_HOLD_SECONDS:  # NaN fails too
        raise invalid("wait", f"Invalid 'wait': '{raw[:40]}'; give seconds from 0 to {MAX_HOLD_SECONDS:g}.")
    return seconds


@dataclass(frozen=True)
class ListQuery:
    after: str | None
    limit: int
    order: str
    filters: dict[str, str | None]


def list_query(request: web.Request, filters: tuple[str, ...] = ("user",), most: int = 100) -> ListQuery:
    """A list endpoint's cursor query: `after`, `limit` (0 to `most`: 0 lists nothing and says whether there is
    more), `order`, and its filters."""
    query = request.query
    allowed = {"after", "limit", "order", *filters}
    for name in query:
        if name not in allowed:
            raise invalid(name, f"Unknown query parameter: '{name[:60]}'.", code="unknown_parameter")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise invalid("limit", f"Invalid 'limit': must be an integer from 0 to {most}.") from None
    if not 0 <= limit <= most:
        raise invalid("limit", f"Invalid 'limit': must be an integer from 0 to {most}.")
    for name in filters:
        if "\x00" in query.get(name, ""):
            raise invalid(name, f"Invalid '{name}': must not contain NUL (\\x00) characters.")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order", "Invalid 'order': use 'asc' or 'desc'.")
    return ListQuery(query.get("after") or None, limit, order, {name: query.get(name) or None for name in filters})


def _list_json(data: list[dict[str, Any]], has_more: bool) -> web.Response:
    return _json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


async def list_videos(request: web.Request) -> web.Response:
    query = list_query(request)
    views, has_more = await request.app[VIDEOS].list(
        after=query.after, limit=query.limit, order=query.order, user=query.filters["user"]
    )
    return _list_json([video_json(view) for view in views], has_more)


async def delete_video(request: web.Request) -> web.Response:
    job = await request.app[VIDEOS].delete(request.match_info["video_id"])
    return _json({"id": job.id, "object": "video.deleted", "deleted": True})


async def download_content(request: web.Request) -> web.StreamResponse:
    for name in request.query:
        if name != "variant":
            raise invalid(name, f"Unknown query parameter: '{name[:60]}'.", code="unknown_parameter")
    path, content_type = await request.app[VIDEOS].content(
        request.match_info["video_id"], request.query.get("variant", "video")
    )
    # A live preview is replaced every few seconds: never served from a cache.
    caching = "no-store" if request.query.get("variant") == "preview" else "private, max-age=60"
    response = web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": caching})
    return response


async def list_models(request: web.Request) -> web.Response:
    """OpenAI's model list with the one model this generator renders, and what a client needs to prompt and size
    for it (family, native sizes, fps, longest segment, defaults)."""
    profile = await request.app[VIDEOS].profile_source()
    entry = {
        "id": profile.name,
        "object": "model",
        "created": 0,
        "owned_by": "hanul",
        "family": profile.family,
        "native_sizes": {orientation: f"{w}x{h}" for orientation, (w, h) in profile.native_sizes.items()},
        "fps": profile.fps,
        "max_segment_seconds": round((profile.max_segment_frames - 1) / profile.fps, 2),
        "max_seconds": request.app[SETTINGS].max_seconds,
        "default_steps": profile.default_steps,
        "default_guidance": profile.default_guidance,
        "supports_image": profile.supports_image,
        "supports_extension": profile.supports_video,
        "supports_edit": profile.supports_edit,
        "subject_conditioning": profile.subject_conditioning or None,
        "same_subject": SAME_SUBJECT.get(profile.subject_conditioning, SAME_SUBJECT[""]),
        "audio": profile.has_sound,  # clips come with sound (ask for silence with the extra field sound=false)
        "audio_sample_rate": profile.audio_sample_rate or None,
    }
    return _json({"object": "list", "data": [entry]})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format (generator/metrics.py); behind the API key like every path but /healthz."""
    body = await request.app[METRICS]()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def health(request: web.Request) -> web.Response:
    report = await request.app[HEALTH]()
    return _json(report, status=200 if report.get("status") == "ok" else 503)


def create_app(
    settings: GeneratorSettings,
    videos: Videos,
    health_report: Callable[[], Awaitable[dict[str, Any]]],
    metrics_text: Callable[[], Awaitable[bytes]] | None = None,
) -> web.Application:
    """The aiohttp application: routes, size cap, auth and error shaping."""
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    track_request_ids()
    app = web.Application(
        client_max_size=settings.max_request_bytes,
        middlewares=[request_id_middleware, error_middleware, auth_middleware(api_key)],
    )
    app[VIDEOS] = videos
    app[SETTINGS] = settings
    app[HEALTH] = health_report
    app.router.add_get("/healthz", health)
    if metrics_text is not None:
        app[METRICS] = metrics_text
        app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/videos", create_video)
    app.router.add_get("/v1/videos", list_videos)
    app.router.add_post("/v1/videos/extensions", extend_video)
    app.router.add_post("/v1/videos/edits", edit_video)
    # Before `/v1/videos/{video_id}`, which would otherwise take "characters" for a video id.
    app.router.add_post("/v1/videos/characters", create_character)
    app.router.add_get("/v1/videos/characters", list_characters)
    app.router.add_get("/v1/videos/characters/{character_id}", retrieve_character)
    app.router.add_delete("/v1/videos/characters/{character_id}", delete_character)
    app.router.add_get("/v1/videos/characters/{character_id}/content", character_frame)
    app.router.add_post("/v1/files", create_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", retrieve_file)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_get("/v1/videos/{video_id}", retrieve_video)
    app.router.add_delete("/v1/videos/{video_id}", delete_video)
    app.router.add_get("/v1/videos/{video_id}/content", download_content)
    app.router.add_post("/v1/videos/{video_id}/remix", remix_video)
    app.on_shutdown.append(_release_held)
    return app


async def _release_held(app: web.Application) -> None:
    """Shutting down: held `GET /v1/videos/{id}?wait=` requests answer now instead of delaying the stop."""
    app[VIDEOS].release_held()
