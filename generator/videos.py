"""The Videos API's operations on plain data: validated requests in, job rows and files out.

HTTP parsing and rendering live in api.py; queue mechanics in queue.py; this module decides what a request
means: which model sizes it maps to, what an extension conditions on, what a remix copies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import logging
import math
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from generator import models
from generator.characters import (
    CANDIDATE_FRAMES,
    REFERENCE_LONG_SIDE,
    Characters,
    NewCharacter,
    character_not_found,
    choose_reference_frames,
)
from generator.errors import APIError, invalid, not_found, not_ready
from generator.files import Files
from generator.images import decode_fitted, read_image_header, reference_png, release_freed_memory, to_png
from generator.media import reading
from generator.models import Character, VideoJob
from generator.params import (
    DEFAULT_EDIT_STRENGTH,
    MAX_SEED,
    SPEC_SIZE_OF,
    CreateCharacterBody,
    CreateVideoBody,
    EditVideoBody,
    ExtendVideoBody,
    RemixVideoBody,
    RenderPlan,
    check_model,
    orientation,
    plan_render,
    plan_size,
    seconds_text,
    shown_size,
)
from generator.pipelines.base import ModelProfile
from generator.queue import JobQueue, NewArtifact
from generator.settings import GeneratorSettings
from generator.storage import ARTIFACTS, MAX_SUBJECT_IMAGES, ArtifactStore, is_video_id, new_video_id
from hanul_core.held import seen_token

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SECONDS = 4.0  # OpenAI's default clip length
TYPICAL_CACHE_SECONDS = 1.0
MAX_HOLD_SECONDS = 30.0  # the longest a `get` may hold its answer (`wait`)
HELD_RECHECK_SECONDS = 1.0  # a held `get` reads its job again this often: changes made on other hosts
MAX_CLIP_FRAME_PIXELS = 4096 * 4096  # one frame of an uploaded clip
MAX_CLIP_PIXELS = 1920 * 1080 * 30 * 60  # all frames of an uploaded clip: a minute of 1080p at 30 fps
DECODES_AT_ONCE = 2  # uploads decoded at the same time; the others wait their turn
ANONYMOUS = "anonymous"  # the client of calls made in-process, not through HTTP


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Pace:
    """How fast the queue moves (`Videos.pace`)."""

    typical_seconds: float | None  # one job's render + encode, the median of the recent ones
    rendering: int  # jobs rendering at once (at least 1)


@dataclass(frozen=True)
class VideoView:
    """A job as clients see it, with the live facts the row does not hold."""

    job: VideoJob
    queue_position: int | None
    eta_seconds: float | None


class Videos:
    """The API's operations on videos (`/v1/videos…`): create, extend, remix, read (held until a change), list,
    delete, content. Each video is a `VideoJob` row on the `JobQueue`.

    Over 300 lines, kept whole: one method per endpoint of the Videos API, each short, sharing the request checks,
    the view of a row and the typical-render-time cache; split further they would pass those back and forth.
    """

    def __init__(
        self,
        *,
        queue: JobQueue,
        store: ArtifactStore,
        profile_source: Callable[[], Awaitable[ModelProfile]],
        settings: GeneratorSettings,
        files: Files,
        characters: Characters,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.files = files
        self.characters = characters
        self.profile_source = profile_source
        self.settings = settings
        self.on_enqueued = on_enqueued
        self._pace: tuple[float, Pace] = (-TYPICAL_CACHE_SECONDS, Pace(None, 1))  # (monotonic time, pace)
        self._releasing_held = asyncio.Event()
        # Uploads are decoded on their own few threads, one at a time each: a 6300×6300 1-bit PNG is 4.9 KB sent
        # and tens of MB decoded; 24 of them at once on the default pool held 4 GB, and freed memory stayed with
        # the threads that had used it.
        self._decoder = ThreadPoolExecutor(max_workers=DECODES_AT_ONCE, thread_name_prefix="hanul-decode")

    # --- create ----------------------------------------------------------------------------------

    async def create(
        self,
        body: CreateVideoBody,
        reference: Upload | None,
        idempotency_key: str | None = None,
        client: str = ANONYMOUS,
    ) -> VideoView:
        profile = await self.profile_source()
        check_model(body.model, profile)
        if body.input_reference is not None and reference is not None:
            raise invalid("input_reference", "Send 'input_reference' once: as a file or as an image_url, not both.")
        image_bytes = reference.data if reference is not None else await self._reference_image(body.input_reference)
        header = None
        if image_bytes is not None:
            if not profile.supports_image:
                raise invalid("input_reference", f"The loaded model '{profile.name}' cannot start from an image.")
            header = await self._decode(read_image_header, image_bytes)
        seconds = DEFAULT_SECONDS if body.seconds is None else body.seconds
        if body.size is None and header is not None:
            # No size asked: the image's orientation, landscape or portrait (a square image: the spec's portrait).
            shape = orientation(header.width, header.height)
            shape = "portrait" if shape == "square" else shape
            size, shown = profile.native_sizes[shape], SPEC_SIZE_OF[shape]
        else:
            size, shown = plan_size(body.size, profile), shown_size(body.size)
        plan = self._plan(profile, body, seconds=seconds, size=size)
        job = self._new_job(profile, "generate", body.prompt, body.negative_prompt, plan, body.seed, body.user, shown)
        # Decoded to the render size in one call: nothing decoded outlives it or waits across an await. Decoded before
        # any file is written: an image that turns out unreadable leaves no folder behind.
        png = None if image_bytes is None else await self._decode(reference_png, image_bytes, plan.width, plan.height)
        artifacts = await self._subjects(job, body.characters)
        if png is not None:
            artifacts.append(await self._store_file(job.id, "reference", png))
        return await self._enqueue(job, artifacts, idempotency_key, client, body.user)

    async def extend(
        self,
        body: ExtendVideoBody,
        upload: Upload | None,
        idempotency_key: str | None = None,
        client: str = ANONYMOUS,
    ) -> VideoView:
        """A continuation of a completed video (by id) or of an uploaded MP4; the result is the stitched whole."""
        profile = await self.profile_source()
        check_model(body.model, profile)
        if not profile.supports_video:
            raise invalid("video", f"The loaded model '{profile.name}' cannot extend videos.")
        if (body.video is None) == (upload is None):
            raise invalid("video", "Give 'video' as a reference {\"id\": …} to a completed video, or upload an MP4.")
        new_seconds = DEFAULT_SECONDS if body.seconds is None else body.seconds
        if upload is None:
            parent = await self._completed_parent(body.video, "extend")
            parent_plan = RenderPlan.from_params(parent.params)
            parent_frames = round(float(parent.seconds) * parent_plan.fps)
            size, fps, shown = (parent_plan.width, parent_plan.height), parent_plan.fps, parent.size
            negative = body.negative_prompt if body.negative_prompt is not None else parent.negative_prompt
            steps = body.num_inference_steps or parent_plan.num_inference_steps
            guidance = parent_plan.guidance_scale if body.guidance_scale is None else body.guidance_scale
            body = body.model_copy(update={"num_inference_steps": steps, "guidance_scale": guidance})
            parent_id = parent.id
        else:
            width, height, fps_found, parent_frames = await self._decode(
                _probe_mp4, upload.data, self.settings.max_seconds
            )
            size, shown = profile.native_sizes[orientation(width, height)], f"{width}x{height}"
            fps, negative, parent_id = profile.fps, body.negative_prompt, None
            parent_frames = round(parent_frames * fps / fps_found)
        if parent_frames / fps + new_seconds > self.settings.max_seconds + 1e-6:
            raise invalid(
                "seconds",
                f"The extended video would be {parent_frames / fps + new_seconds:g} s; "
                f"at most {self.settings.max_seconds:g} s are allowed.",
            )
        plan = self._plan(profile, body, seconds=new_seconds, size=size, fps=fps)
        job = self._new_job(profile, "extend", body.prompt, negative, plan, body.seed, body.user, shown)
        job.parent_id = parent_id
        job.seconds = seconds_text(parent_frames + plan.num_frames, fps)
        artifacts = await self._subjects(job, body.characters)
        if upload is not None:
            artifacts.append(await self._store_file(job.id, "source", upload.data))
        return await self._enqueue(job, artifacts, idempotency_key, client, body.user)

    async def remix(
        self, video_id: str, body: RemixVideoBody, idempotency_key: str | None = None, client: str = ANONYMOUS
    ) -> VideoView:
        """Same settings, seed and conditioning as the source, a new prompt."""
        profile = await self.profile_source()
        source = await self._visible(video_id)
        if source.status != models.COMPLETED:
            raise not_ready(video_id, source.status)
        params = dict(source.params)
        if body.max_bytes is not None:
            params["max_bytes"] = body.max_bytes
        job = VideoJob(
            id=new_video_id(),
            kind=source.kind,
            model=profile.name,
            prompt=body.prompt,
            negative_prompt=source.negative_prompt,
            seconds=source.seconds,
            size=source.size,
            params=params,
            seed=source.seed,
            user=body.user if body.user is not None else source.user,
            parent_id=source.parent_id,
            remixed_from_id=source.id,
        )
        if body.characters is not None:  # other characters than the source's: theirs replace its reference frames
            params.pop("characters", None)
            artifacts = await self._subjects(job, body.characters)
        else:
            artifacts = []
        for artifact in await self.queue.artifacts_of(source.id):
            copied = artifact.kind in ("reference", "source") or (
                artifact.kind.startswith("subject-") and body.characters is None
            )
            if copied:
                try:
                    data = await asyncio.to_thread(self.store.resolve(artifact.path).read_bytes)
                except FileNotFoundError:  # the source was deleted since it was read: so is what was copied
                    await asyncio.to_thread(self.store.delete_job, job.id)
                    await self._visible(video_id)  # 404 when deleted
                    raise APIError(
                        404, f"The files of '{video_id}' are missing from storage.", param="video_id", code="not_found"
                    ) from None
                artifacts.append(await self._store_file(job.id, artifact.kind, data))
        return await self._enqueue(job, artifacts, idempotency_key, client, body.user)

    async def edit(
        self,
        body: EditVideoBody,
        upload: Upload | None,
        idempotency_key: str | None = None,
        client: str = ANONYMOUS,
    ) -> VideoView:
        """A completed video (by id) or an uploaded clip re-rendered by a prompt (video-to-video): the result keeps
        the source's length, size and fps, and as much of its motion and framing as `strength` leaves."""
        profile = await self.profile_source()
        check_model(body.model, profile)
        if not profile.supports_edit:
            raise invalid("video", f"The loaded model '{profile.name}' cannot edit videos.")
        if (body.video is None) == (upload is None):
            raise invalid("video", "Give 'video' as a reference {\"id\": …} to a completed video, or upload an MP4.")
        strength = DEFAULT_EDIT_STRENGTH if body.strength is None else body.strength
        negative, steps, guidance = body.negative_prompt, body.num_inference_steps, body.guidance_scale
        if upload is None:
            source = await self._completed_parent(body.video, "edit")
            source_plan = RenderPlan.from_params(source.params)
            frames = round(float(source.seconds) * source_plan.fps)
            size, fps, shown = (source_plan.width, source_plan.height), source_plan.fps, source.size
            negative = negative if negative is not None else source.negative_prompt
            steps = steps or source_plan.num_inference_steps
            guidance = source_plan.guidance_scale if guidance is None else guidance
            source_id = source.id
        else:
            width, height, fps_found, frames = await self._decode(_probe_mp4, upload.data, self.settings.max_seconds)
            fps, shown, source_id = min(60, max(1, round(fps_found))), f"{width}x{height}", None
            frames = max(1, round(frames * fps / fps_found))  # as long as the clip at the fps it is rendered at
            size = _edit_size(width, height, profile)
        if frames > profile.max_segment_frames and not profile.supports_video:
            raise invalid(
                "video",
                f"The loaded model '{profile.name}' edits at most {profile.max_segment_frames} frames "
                f"({profile.max_segment_frames / fps:g} s) at once and cannot chain longer edits.",
            )
        plan = RenderPlan(
            width=size[0],
            height=size[1],
            num_frames=frames,
            fps=fps,
            num_inference_steps=steps or profile.default_steps,
            guidance_scale=profile.default_guidance if guidance is None else guidance,
            max_bytes=body.max_bytes or self.settings.default_max_bytes,
            strength=strength,
        )
        job = self._new_job(profile, "edit", body.prompt, negative, plan, body.seed, body.user, shown)
        job.parent_id = source_id
        artifacts = await self._subjects(job, body.characters)
        if upload is not None:
            artifacts.append(await self._store_file(job.id, "source", upload.data))
        return await self._enqueue(job, artifacts, idempotency_key, client, body.user)

    # --- characters ------------------------------------------------------------------------------

    async def create_character(self, body: CreateCharacterBody, upload: Upload | None) -> Character:
        """A character from an uploaded clip (MP4: its best frames) or image (PNG, JPEG, WebP: itself)."""
        if upload is None:
            raise invalid("video", "Upload the character's clip (MP4) or image (PNG, JPEG, WebP) as 'video'.")
        if _looks_like_image(upload.data):
            source, pngs = "image", [await self._decode(_image_reference, upload.data)]
        else:
            source, pngs = "video", await self._decode(_clip_references, upload.data, self.settings.max_seconds)
        return await self.characters.create(NewCharacter(body.name, body.user, body.description, source, pngs))

    async def _subjects(self, job: VideoJob, ids: list[str] | None) -> list[NewArtifact]:
        """The named characters' reference frames, copied into the job's folder (a character deleted while the job
        waits takes nothing from it); their ids go into the job's params."""
        if not ids:
            return []
        unique = list(dict.fromkeys(ids))
        found = [await self.characters.get(character_id, param="characters") for character_id in unique]
        paths = [path for character in found for path in character.frames]
        if len(paths) > MAX_SUBJECT_IMAGES:  # more frames than a job carries: each character's best ones
            per = MAX_SUBJECT_IMAGES // len(found)
            paths = [path for character in found for path in character.frames[:per]]
        artifacts = []
        for index, path in enumerate(paths):
            try:
                data = await asyncio.to_thread(self.store.resolve(path).read_bytes)
            except FileNotFoundError:  # its character was deleted since it was read
                await asyncio.to_thread(self.store.delete_job, job.id)
                owner = next(character for character in found if path in character.frames)
                raise character_not_found(owner.id, param="characters") from None
            artifacts.append(await self._store_file(job.id, f"subject-{index}", data))
        job.params = {**job.params, "characters": unique}
        return artifacts

    # --- read and remove -------------------------------------------------------------------------

    async def get(self, video_id: str, wait: float = 0.0, seen: str | None = None) -> VideoView:
        """The job as it is. With `wait`, the answer for an unfinished job is held for up to that many seconds while
        its state (`shown_state`: status, progress, queue position) is still `seen`, the state the client last
        saw (by default, the state when asked; "" for nothing seen yet, i.e. answer at once): a client learns that
        its video is finished at once, not at its next poll, and asks less often."""
        view = await self._view(await self._visible(video_id))
        seen = shown_state(view) if seen is None else seen
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while view.job.status in models.UNFINISHED and shown_state(view) == seen and not self._releasing_held.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # Woken by this process's own changes at once; another host's worker is seen at the next re-read.
            await self.queue.wait_for_change(video_id, min(remaining, HELD_RECHECK_SECONDS))
            view = await self._view(await self._visible(video_id))
        return view

    async def _decode(self, function: Callable[..., T], *args: object) -> T:
        """Run `function` on a decoding thread, then hand the memory it freed back to the system."""

        def decode() -> T:
            try:
                return function(*args)
            finally:
                release_freed_memory()

        return await asyncio.get_running_loop().run_in_executor(self._decoder, decode)

    def close(self) -> None:
        """Stop the decoding threads (the service is stopping)."""
        self._decoder.shutdown(wait=False, cancel_futures=True)

    def release_held(self) -> None:
        """Answer every held `get` now and hold no more (the server is shutting down)."""
        self._releasing_held.set()
        self.queue.wake_waiters()

    async def list(
        self, *, after: str | None, limit: int, order: str, user: str | None
    ) -> tuple[list[VideoView], bool]:
        if after is not None and not is_video_id(after):
            raise invalid("after", f"Invalid 'after': '{after[:80]}' is not a video id.")
        jobs, has_more = await self.queue.list(after=after, limit=limit, order=order, user=user)
        return [await self._view(job) for job in jobs], has_more

    async def delete(self, video_id: str) -> VideoJob:
        """Cancel a queued or running job, or delete a finished one and its files."""
        if not is_video_id(video_id):
            raise not_found(video_id)
        job = await self.queue.request_cancel(video_id)
        if job is None:
            raise not_found(video_id)
        if job.status in models.FINISHED:
            if await self.queue.is_awaited(video_id):
                # An extension or edit of it waits for its turn and reads these files then: the service's sweep
                # removes them once none waits (the video is gone for clients already).
                log.info("%s is deleted; its files stay until the jobs that extend or edit it have started", video_id)
            else:
                await remove_files(self.store, self.queue, video_id)
        return job

    async def content(self, video_id: str, variant: str) -> tuple[Path, str]:
        """The file behind a completed video's variant: video, thumbnail or spritesheet; or, at any time, the latest
        live preview of its render (`preview`, Hanul's addition: 404 until the first one exists)."""
        if variant not in ("video", "thumbnail", "spritesheet", "preview"):
            raise invalid(
                "variant", f"Invalid 'variant': '{variant[:40]}'; use video, thumbnail, spritesheet or preview."
            )
        job = await self._visible(video_id)
        if variant == "preview":
            preview = job.artifact("preview")
            path = self.store.resolve(preview.path) if preview else None
            if path is None or not path.exists():
                raise APIError(404, f"'{video_id}' has no preview yet.", param="variant", code="preview_not_ready")
            return path, preview.content_type
        if job.status != models.COMPLETED:
            raise not_ready(video_id, job.status)
        artifact = job.artifact(variant)
        path = self.store.resolve(artifact.path) if artifact else None
        if path is None or not path.exists():
            raise APIError(
                404, f"The {variant} of '{video_id}' is missing from storage.", param="variant", code="not_found"
            )
        return path, artifact.content_type

    # --- helpers ---------------------------------------------------------------------------------

    def _plan(
        self,
        profile: ModelProfile,
        body: CreateVideoBody | ExtendVideoBody,
        *,
        seconds: float,
        size: tuple[int, int],
        fps: int | None = None,
    ) -> RenderPlan:
        return plan_render(
            body,
            profile=profile,
            seconds=seconds,
            size=size,
            default_max_bytes=self.settings.default_max_bytes,
            max_seconds=self.settings.max_seconds,
            fps=fps,
        )

    @staticmethod
    def _new_job(
        profile: ModelProfile,
        kind: str,
        prompt: str,
        negative: str | None,
        plan: RenderPlan,
        seed: int | None,
        user: str | None,
        shown: str,
    ) -> VideoJob:
        """`shown`: the size the Video object shows (the one asked); the plan has the size rendered."""
        return VideoJob(
            id=new_video_id(),
            kind=kind,
            model=profile.name,
            prompt=prompt,
            negative_prompt=negative,
            seconds=seconds_text(plan.num_frames, plan.fps),
            size=shown,
            params=plan.as_params(),
            seed=secrets.randbelow(2**31) if seed is None else min(seed, MAX_SEED),
            user=user,
        )

    async def _store_file(self, video_id: str, kind: str, data: bytes) -> NewArtifact:
        """Write an uploaded or copied file off the event loop (uploads can be tens of MB)."""
        await asyncio.to_thread(self.store.write_bytes, video_id, kind, data)
        return NewArtifact(
            kind=kind, path=self.store.relative_path(video_id, kind), content_type=ARTIFACTS[kind][1], bytes=len(data)
        )

    async def _enqueue(
        self,
        job: VideoJob,
        artifacts: list[NewArtifact],
        idempotency_key: str | None,
        client: str,
        named: str | None,
    ) -> VideoView:
        """Queue the job. `client` is who sent it (`api.client_bucket`): a job without a `user` counts against that
        client's share. An Idempotency-Key only finds jobs of the same user the request `named` (without one: of
        the same client), never those of a remix's source's user."""
        params = {key: value for key, value in job.params.items() if key != "bucket"}  # a remix copies its source's
        if job.user is None:
            params["bucket"] = client
        job.params = params
        job.idempotency_key = scoped_idempotency_key(client, named, idempotency_key)
        try:
            stored = await self.queue.enqueue(job, artifacts)
        except BaseException:
            if artifacts:
                self.store.delete_job(job.id)
            raise
        if stored.id != job.id:  # a retry of a request that already made a job: keep that one
            if artifacts:
                self.store.delete_job(job.id)
            if _request_of(stored) != _request_of(job):  # the same key for another request is a client's mistake
                raise APIError(
                    422,
                    f"This Idempotency-Key was first sent with another request (it made '{stored.id}'); send a new "
                    "key with each new request.",
                    param="Idempotency-Key",
                    code="idempotency_key_reused",
                )
            log.info("idempotent retry: %s already made %s", idempotency_key, stored.id)
            return await self._view(stored)
        self.on_enqueued()
        log.info("queued %s (%s, %s s, %s) for %s", job.id, job.kind, job.seconds, job.size, job.user or "anonymous")
        return await self._view(stored)

    async def _reference_image(self, reference: dict[str, str] | None) -> bytes | None:
        """`input_reference` given as JSON or form fields: a data URL, or a file uploaded through `/v1/files`."""
        if reference is not None and "file_id" in reference:
            if set(reference) != {"file_id"}:
                raise invalid("input_reference", "Give 'input_reference' as a file_id or an image_url, not both.")
            return await self.files.read(reference["file_id"], param="input_reference")
        return _data_url_image(reference)

    async def _visible(self, video_id: str) -> VideoJob:
        if not is_video_id(video_id):
            raise not_found(video_id)
        job = await self.queue.get(video_id)
        if job is None:
            raise not_found(video_id)
        return job

    async def _completed_parent(self, reference: dict[str, str] | None, purpose: str) -> VideoJob:
        parent_id = (reference or {}).get("id")
        if not parent_id:
            raise invalid("video", f"Missing 'video.id': the id of the completed video to {purpose}.")
        parent = await self._visible(parent_id)
        if parent.status != models.COMPLETED:
            raise not_ready(parent_id, parent.status)
        return parent

    async def _view(self, job: VideoJob) -> VideoView:
        position = await self.queue.queue_position(job)
        return VideoView(job=job, queue_position=position, eta_seconds=await self._eta(job, position))

    async def _eta(self, job: VideoJob, position: int | None) -> float | None:
        if job.status == models.IN_PROGRESS and job.started_at is not None and job.progress > 0:
            elapsed = time.time() - job.started_at.timestamp()
            return round(elapsed * (100 - job.progress) / job.progress, 1)
        if position is not None:
            pace = await self.pace()
            if pace.typical_seconds is None:
                return None
            # The queue goes `rendering` jobs at a time: the job at position p is done after ceil(p / rendering)
            # renders, one at a time with a single worker.
            return round(pace.typical_seconds * math.ceil(position / pace.rendering), 1)
        return None

    async def pace(self) -> Pace:
        """How fast the queue moves: the median render + encode time of the last 20 completed jobs (not the last
        20 created: behind a long queue those have not run), and how many jobs render at once (across every host
        of a fleet). Read at most once a second: every poll of a queued job asks for it, and under many pollers
        reading 20 rows each time was half the cost of a retrieve."""
        cached_at, pace = self._pace
        if time.monotonic() - cached_at < TYPICAL_CACHE_SECONDS:
            return pace
        recent = await self.queue.recently_completed(20)
        times = [j.timings.get("render_s", 0) + j.timings.get("encode_s", 0) for j in recent if j.timings]
        times = [t for t in times if t > 0]
        pace = Pace(statistics.median(times) if times else None, max(1, await self.queue.rendering_count()))
        self._pace = (time.monotonic(), pace)
        return pace


def _request_of(job: VideoJob) -> tuple[object, ...]:
    """What a retry repeats exactly: the kind of request, its prompt and the video it starts from."""
    return job.kind, job.prompt, job.parent_id, job.remixed_from_id


def scoped_idempotency_key(client: str, user: str | None, key: str | None) -> str | None:
    """The stored form of an Idempotency-Key: one user's key (a nameless client's, for requests without a user)
    never finds another's job. A named user's retry finds its job from any address (a bot behind another proxy)."""
    if key is None:
        return None
    scope = json.dumps(["user", user, key] if user is not None else ["client", client, key], ensure_ascii=False)
    return "v1:" + hashlib.sha256(scope.encode()).hexdigest()


def shown_state(view: VideoView) -> str:
    """What a poller watches for (`hanul_core.held.seen_token`): a held `get` answers when it changes."""
    return seen_token(view.job.status, view.job.progress, view.queue_position)


def _edit_size(width: int, height: int, profile: ModelProfile) -> tuple[int, int]:
    """An uploaded clip's size on the model's grid, or the model's native size for its orientation when it is
    outside what the model renders."""
    step = profile.size_multiple
    rounded = (max(step, round(width / step) * step), max(step, round(height / step) * step))
    if max(rounded) > profile.max_side or min(rounded) < profile.min_side:
        return profile.native_sizes[orientation(width, height)]
    return rounded


def _looks_like_image(data: bytes) -> bool:
    """PNG, JPEG or WebP by their first bytes (a clip is read as MP4, anything else refused as one)."""
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _image_reference(data: bytes) -> bytes:
    """An uploaded image as a character's one reference frame: upright, at most REFERENCE_LONG_SIDE long."""
    header = read_image_header(data, "video")
    scale = min(1.0, REFERENCE_LONG_SIDE / max(header.width, header.height))
    width, height = max(1, round(header.width * scale)), max(1, round(header.height * scale))
    return to_png(decode_fitted(data, width, height, "video"))


def _clip_references(data: bytes, max_seconds: float) -> list[bytes]:
    """An uploaded clip's best frames as PNGs (see generator.characters), at most REFERENCE_LONG_SIDE long."""
    import av

    _, _, _, count = _probe_mp4(data, max_seconds)
    wanted = set(np.linspace(0, count - 1, min(CANDIDATE_FRAMES, count)).round().astype(int).tolist())
    candidates = []
    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                shown = reading.shown_size(frame)  # a phone's clip stored on its side: kept upright
                scale = min(1.0, REFERENCE_LONG_SIDE / max(shown))
                size = max(1, round(shown[0] * scale)), max(1, round(shown[1] * scale))
                candidates.append(np.asarray(reading.upright_image(frame, *size).convert("RGB")))
    if not candidates:
        raise invalid("video", "The uploaded video has no frames.")
    return [to_png(candidates[index]) for index in choose_reference_frames(candidates)]


def _data_url_image(reference: dict[str, str] | None) -> bytes | None:
    """`{"image_url": "data:image/png;base64,…"}` → bytes. Remote URLs are not fetched."""
    if reference is None:
        return None
    url = reference.get("image_url")
    if not url:
        raise invalid(
            "input_reference",
            'Give \'input_reference\' as an uploaded file, {"image_url": "data:…"} or {"file_id": "file-…"}.',
        )
    if not url.startswith("data:") or ";base64," not in url:
        raise invalid("input_reference", "Only data: URLs (base64) are accepted for 'input_reference.image_url'.")
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("input_reference", "'input_reference.image_url' is not valid base64.") from None


def _probe_mp4(data: bytes, max_seconds: float) -> tuple[int, int, float, int]:
    """Width, height, fps and frame count of an uploaded clip, refusing what isn't a short readable video.

    Decided from the header and the packets (no frame is decoded to count them), then one frame is decoded to
    prove the stream can be: a 22.8 KB MP4 can hold 300 frames of 1080p, 1.9 GB once decoded."""
    import av

    try:
        # Only the MP4/QuickTime demuxer reads uploads: no probing of images, playlists or other formats.
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            if not container.streams.video:
                raise invalid("video", "The uploaded file has no video stream.")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            if not width or not height or not fps:
                raise invalid("video", "The uploaded video has no frames.")
            if width * height > MAX_CLIP_FRAME_PIXELS:
                raise invalid("video", f"The uploaded video is {width}×{height}; at most 4096×4096 is accepted.")
            most = math.floor(max_seconds * fps + 1e-6)
            _refuse_long_clip(stream.frames, most, width, height, max_seconds)  # the header's own count
            frames = 0
            for packet in container.demux(stream):
                if packet.size:
                    frames += 1
                    _refuse_long_clip(frames, most, width, height, max_seconds)
            container.seek(0)
            first = next(container.decode(stream), None)
            if first is None:
                raise invalid("video", "The uploaded video has no frames.")
            if reading.display_turn(first) in (90, 270):  # a phone's portrait clip, stored on its side
                width, height = height, width
    except APIError:
        raise
    except Exception:
        raise invalid("video", "The uploaded file is not a readable video.") from None
    if frames == 0:
        raise invalid("video", "The uploaded video has no frames.")
    return width, height, fps, frames


def _refuse_long_clip(frames: int, most: int, width: int, height: int, max_seconds: float) -> None:
    if frames > most:
        raise invalid("video", f"The uploaded clip is longer than {max_seconds:g} s.")
    if frames * width * height > MAX_CLIP_PIXELS:
        raise invalid(
            "video",
            f"The uploaded clip has {frames} frames of {width}×{height}; at most {MAX_CLIP_PIXELS:,} pixels in all "
            "(a minute of 1080p at 30 fps) are accepted.",
        )


async def remove_files(store: ArtifactStore, queue: JobQueue, video_id: str) -> None:
    """A deleted video's files, and their rows."""
    await asyncio.to_thread(store.delete_job, video_id)
    await queue.drop_artifact_rows(video_id)
