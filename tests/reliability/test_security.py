"""The generator listens on loopback unless told otherwise, refuses requests without the exact API key, and never
writes the key (or a wrong one) to its logs."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import openai
import pytest

from generator.settings import GeneratorSettings
from tests.support.generator_service import running_generator, sdk_client
from tests.support.processes import ProcessFactory


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, from /proc/net/tcp (and tcp6 for '::')."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if width == 8:
                    found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add("::" if int(address, 16) == 0 else address)
    return found


def test_the_default_bind_address_is_loopback() -> None:
    assert GeneratorSettings().host == "127.0.0.1"


async def test_a_started_generator_listens_on_loopback_only(tmp_path: Path) -> None:
    async with running_generator(tmp_path / "generator", GENERATOR_WORKERS=0) as running:
        host, port = running.runner.addresses[0][:2]
        assert host == "127.0.0.1"
        assert listening_addresses(port) == {"127.0.0.1"}


KEY = "hanul-" + secrets.token_hex(16)
WRONG_AUTHORIZATIONS = {
    "missing": None,
    "empty": "",
    "wrong key": f"Bearer hanul-{secrets.token_hex(16)}",
    "a prefix of the key": f"Bearer {KEY[:-1]}",
    "the key and more": f"Bearer {KEY}0",
    "the key without 'Bearer'": KEY,
    "the key as Basic auth": f"Basic {KEY}",
    "only 'Bearer'": "Bearer ",
    "the key twice": f"Bearer {KEY}, Bearer {KEY}",
}


@pytest.mark.parametrize("authorization", WRONG_AUTHORIZATIONS.values(), ids=WRONG_AUTHORIZATIONS.keys())
async def test_every_api_request_needs_the_exact_key(tmp_path: Path, authorization: str | None) -> None:
    async with running_generator(tmp_path / "generator", GENERATOR_WORKERS=0, GENERATOR_API_KEY=KEY) as running:
        headers = {} if authorization is None else {"Authorization": authorization}
        async with aiohttp.ClientSession(headers=headers) as session:
            for method, path in [("POST", "/videos"), ("GET", "/videos"), ("GET", "/videos/video_" + "0" * 32)]:
                async with session.request(method, running.base_url + path, json={"prompt": "x"}) as response:
                    assert response.status == 401
                    error = (await response.json())["error"]
                    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
                    assert set(error) == {"message", "type", "param", "code"}
            async with session.get(running.base_url.removesuffix("/v1") + "/healthz") as response:
                assert response.status == 200  # health checks need no key
        async with sdk_client(running, api_key=KEY) as client:
            video = await client.videos.create(prompt="with the right key", seconds="1")
            assert (await client.videos.retrieve(video.id)).id == video.id
        async with sdk_client(running, api_key=KEY[:-1]) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.videos.list()


async def test_neither_the_key_nor_wrong_keys_reach_the_logs(generator_processes: ProcessFactory) -> None:
    generator = generator_processes("secure", GENERATOR_API_KEY=KEY, LOG_LEVEL="DEBUG").start()
    port = urlsplit(generator.base_url).port
    assert port is not None and listening_addresses(port) == {"127.0.0.1"}  # `python -m generator serve`'s default

    async with openai.AsyncOpenAI(base_url=generator.base_url, api_key=KEY, max_retries=0) as client:
        video = await client.videos.create_and_poll(prompt="a lantern", seconds="1", size="32x32", poll_interval_ms=50)
        assert video.status == "completed"
        assert (await client.videos.download_content(video.id)).read()[4:8] == b"ftyp"
        await client.videos.list()
        await client.videos.delete(video.id)
        with pytest.raises(openai.NotFoundError):
            await client.videos.retrieve("video_" + "f" * 32)
    async with aiohttp.ClientSession() as session:
        for authorization in WRONG_AUTHORIZATIONS.values():
            headers = {} if authorization is None else {"Authorization": authorization}
            async with session.post(f"{generator.base_url}/videos", json={"prompt": "x"}, headers=headers) as response:
                assert response.status == 401
    assert generator.stop() == 0

    log = generator.log()
    assert " DEBUG " in log and "completed in" in log, "the log covers a whole job at DEBUG"
    assert KEY not in log
    wrong_keys = {authorization.split()[-1] for authorization in WRONG_AUTHORIZATIONS.values() if authorization}
    for wrong_key in wrong_keys - {"Bearer"}:
        assert wrong_key not in log
