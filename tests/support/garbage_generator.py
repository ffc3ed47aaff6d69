"""A server at GENERATOR_URL that answers like the OpenAI Videos API on the surface but sends garbage in one
chosen way: a web page with 200, a progress that is not a number, a status nobody knows, an endless "MP4", or
a file that is not an MP4 at all."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

MODES = ("html", "bad_id", "progress", "status", "endless_mp4", "endless_zeros", "huge_declared", "not_mp4")
CHUNK = 64 * 1024
GIVE_UP_AT = 1536 * 1024 * 1024  # the "1.5 GB MP4"
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def _video(video_id: str, status: str, progress: object = 0) -> dict:
    return {
        "id": video_id,
        "object": "video",
        "status": status,
        "progress": progress,
        "created_at": 1,
        "model": "garbage",
        "seconds": "1",
        "size": "1280x720",
        "prompt": "",
    }


class GarbageGenerator:
    """The server; `bytes_sent` counts what downloads took of the clip before the client stopped reading."""

    def __init__(self, mode: str) -> None:
        assert mode in MODES
        self.mode = mode
        self.bytes_sent = 0
        self.base_url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/videos", self._create)
        app.router.add_get("/v1/videos/{id}", self._retrieve)
        app.router.add_get("/v1/videos/{id}/content", self._content)
        app.router.add_delete("/v1/videos/{id}", self._delete)
        return app

    async def _create(self, request: web.Request) -> web.Response:
        await request.read()
        if self.mode == "html":
            return web.Response(text="<html><body><h1>Welcome to nginx!</h1></body></html>", content_type="text/html")
        if self.mode == "bad_id":
            return web.json_response(_video("../" * 30, "queued"))
        return web.json_response(_video("video_garbage1", "queued"))

    async def _retrieve(self, request: web.Request) -> web.Response:
        video_id = request.match_info["id"]
        if self.mode == "progress":
            return web.json_response(_video(video_id, "in_progress", "lots"))
        if self.mode == "status":
            return web.json_response(_video(video_id, "thinking", 50))
        return web.json_response(_video(video_id, "completed", 100))

    async def _content(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "not_mp4":
            return web.Response(body=b"<html>oops</html>" * 10, content_type="video/mp4")
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        if self.mode == "huge_declared":
            response.content_length = GIVE_UP_AT
        await response.prepare(request)
        head = b"\x00" * 24 if self.mode == "endless_zeros" else MP4_HEAD
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write(head)
            self.bytes_sent += len(head)
            while self.bytes_sent < GIVE_UP_AT:
                await response.write(b"\x00" * CHUNK)
                self.bytes_sent += CHUNK
        return response

    async def _delete(self, request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "object": "video.deleted", "deleted": True})


@contextlib.asynccontextmanager
async def garbage_generator(mode: str) -> AsyncIterator[GarbageGenerator]:
    """Serve `mode`'s garbage on a free local port; `base_url` is what GENERATOR_URL takes."""
    server = GarbageGenerator(mode)
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield server
    finally:
        await runner.cleanup()
