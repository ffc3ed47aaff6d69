"""Memory and time of the generator under issue 17's hostile uploads, measured from outside the server process.

Starts `python -m generator serve` on the tiny model (CPU, one worker), then sends one attack and reports the
server's resident memory (RSS) before it, at its peak (the kernel's high-water mark, reset just before), and after
the server has gone idle, plus timings. Prints one JSON line.

    python bench/hostile_uploads.py image      # 24 concurrent uploads of a 4.9 KB 1-bit PNG of 6300x6300
    python bench/hostile_uploads.py mp4        # a 22 KB MP4 (1920x1080, 300 black frames) sent to be extended
    python bench/hostile_uploads.py multipart  # a 64 MB multipart body of one million tiny parts

`--code PATH` runs the server from another checkout (e.g. the code before the fix) with the same client.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the peak since the last reset) of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux 4.0+)


def one_bit_png(side: int = 6300) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (side, side), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def black_mp4(width: int = 1920, height: int = 1080, frames: int = 300, fps: int = 30) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51"}
        black = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(black):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def many_parts(total_bytes: int = 64 * MB, boundary: str = "x") -> bytes:
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'.encode()
    return part * (total_bytes // len(part)) + f"--{boundary}--\r\n".encode()


async def wait_for_health(http: aiohttp.ClientSession, origin: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{origin}/healthz") as response:
                if response.status == 200 and (await response.json()).get("model_loaded"):
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("the generator did not start")


async def wait_until_idle(http: aiohttp.ClientSession, origin: str, limit: float = 600) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        async with http.get(f"{origin}/healthz") as response:
            queue = (await response.json())["queue"]
        if not any(queue.values()):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("jobs did not finish")


async def health_latencies(http: aiohttp.ClientSession, origin: str, stop: asyncio.Event) -> list[float]:
    """How long each /healthz took while the attack ran."""
    took = []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with http.get(f"{origin}/healthz") as response:
                await response.read()
        except aiohttp.ClientError:
            pass
        took.append(time.perf_counter() - started)
        await asyncio.sleep(0.1)
    return took


async def attack(kind: str, origin: str, pid: int, uploads: int) -> dict[str, object]:
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await wait_for_health(http, origin)
        await asyncio.sleep(1)
        before = memory(pid)["VmRSS"]
        reset_peak(pid)
        stop = asyncio.Event()
        probing = asyncio.create_task(health_latencies(http, origin, stop))
        started = time.perf_counter()
        facts: dict[str, object] = {}
        if kind == "image":
            png = one_bit_png()
            facts["upload_bytes"] = len(png)

            async def upload(index: int) -> int:
                form = aiohttp.FormData()
                form.add_field("prompt", f"upload {index}")
                form.add_field("seconds", "1")
                form.add_field("input_reference", png, filename="bomb.png", content_type="image/png")
                async with http.post(f"{origin}/v1/videos", data=form) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(upload(index) for index in range(uploads)))
        elif kind == "mp4":
            clip = black_mp4()
            facts["upload_bytes"] = len(clip)
            form = aiohttp.FormData()
            form.add_field("prompt", "extend the dark")
            form.add_field("seconds", "1")
            form.add_field("video", clip, filename="black.mp4", content_type="video/mp4")
            async with http.post(f"{origin}/v1/videos/extensions", data=form) as response:
                answer = await response.json()
                facts["answer"] = (answer.get("error") or {}).get("code") or answer.get("status")
                statuses = [response.status]
        else:
            body = many_parts()
            facts["upload_bytes"] = len(body)
            headers = {"Content-Type": "multipart/form-data; boundary=x"}
            try:
                async with http.post(f"{origin}/v1/videos", data=body, headers=headers) as response:
                    answer = await response.json()
                    facts["answer"] = (answer.get("error") or {}).get("code") or answer.get("status")
                    statuses = [response.status]
            except aiohttp.ClientError as error:  # the server may close while the client still sends
                statuses = [type(error).__name__]
        facts["answered_s"] = round(time.perf_counter() - started, 2)
        await wait_until_idle(http, origin)
        facts["done_s"] = round(time.perf_counter() - started, 2)
        stop.set()
        latencies = await probing
        peak = memory(pid)["VmHWM"]
        await asyncio.sleep(5)
        after = memory(pid)["VmRSS"]
    return {
        "case": kind,
        "statuses": sorted({str(status) for status in statuses}),
        "rss_before_mb": round(before),
        "rss_peak_mb": round(peak),
        "rss_idle_after_mb": round(after),
        "healthz_slowest_s": round(max(latencies), 3) if latencies else None,
        **facts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["image", "mp4", "multipart"])
    parser.add_argument("--uploads", type=int, default=24, help="concurrent image uploads (default 24)")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose generator runs (default: this one)")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GENERATOR_", "HANUL_"))}
        env.update(
            PYTHONPATH=str(args.code.resolve()),
            HANUL_DATA_DIR=data,
            GENERATOR_MODEL="tiny",
            GENERATOR_DEVICE="cpu",
            GENERATOR_DTYPE="float32",
            GENERATOR_PORT=str(port),
            GENERATOR_WORKERS="1",
            GENERATOR_MAX_QUEUE_PER_USER="100",
            LOG_LEVEL="WARNING",
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "generator", "serve"], cwd=data, env=env, stdout=subprocess.DEVNULL
        )
        try:
            result = asyncio.run(attack(args.case, f"http://127.0.0.1:{port}", server.pid, args.uploads))
        finally:
            server.terminate()
            server.wait(timeout=60)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
