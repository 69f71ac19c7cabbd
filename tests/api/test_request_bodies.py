"""Request bodies: the key is checked before a body is read, and bodies are capped.

The structural tests talk raw HTTP to a real uvicorn server and send only the request
head: an answer that arrives while the body is still unsent proves the server never
waited for (let alone buffered or parsed) it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

import httpx
import psutil
import pytest

from .conftest import API_KEY, Api, LiveServer
from .server_process import spawn

MiB = 2**20
CAP = MiB  # the default of WASYNC_MAX_BODY_BYTES


async def _head_only(base_url: str, head: str) -> tuple[int, dict[str, object]]:
    """Send a request head (no body) and read the answer: status and JSON body."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        await writer.drain()
        # A bounded wait: a server that waits for the body never answers.
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        writer.close()
    return int(status_line.split()[1]), json.loads(body)


class RssPeak:
    """The highest RSS of a process, sampled from a thread until stopped."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self._thread.join(10)
        return max(self.peak, self.process.memory_info().rss)


def _post_head(path: str, length: int, key: str | None) -> str:
    auth = f"X-Api-Key: {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {length}\r\n\r\n"
    )


async def test_no_key_is_refused_before_the_body_is_read(live_server: LiveServer) -> None:
    status, body = await _head_only(
        live_server.base_url, _post_head("/api/sessions", 20 * MiB, None)
    )
    assert status == 401 and body["error"] == "unauthorized"
    status, body = await _head_only(
        live_server.base_url, _post_head("/api/sessions", 100, "wrong-key-wrong-key")
    )
    assert status == 401


async def test_a_body_over_the_cap_is_refused_before_it_is_read(live_server: LiveServer) -> None:
    status, body = await _head_only(
        live_server.base_url, _post_head("/api/sessions", CAP + 1, API_KEY)
    )
    assert status == 413 and body["error"] == "payload_too_large"
    assert str(CAP) in str(body["detail"])
    # Every route, not only the API's: Socket.IO's polling transport too.
    status, _ = await _head_only(
        live_server.base_url, _post_head("/socket.io/?EIO=4&transport=polling", CAP + 1, API_KEY)
    )
    assert status == 413


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


async def test_a_chunked_body_is_counted_as_it_streams(api: Api) -> None:
    # No Content-Length: the cap applies to what arrives, chunk by chunk.
    r = await api.client.post("/api/sessions", content=_chunks(2 * CAP))
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    assert "detail" in r.json()
    # A body under the cap goes through to the route (which judges the name).
    r = await api.client.post("/api/sessions", content=_chunks(CAP // 2))
    assert r.status_code in (400, 422), r.text
    anonymous = await api.client.post(
        "/api/sessions", content=_chunks(2 * CAP), headers={"X-Api-Key": ""}
    )
    assert anonymous.status_code == 401


async def test_the_cap_is_a_setting(api: Api) -> None:
    assert api.runtime.settings.max_body_bytes == CAP
    ok = await api.client.post("/api/sessions", json={"name": "n" * 10, "engine": "simulator"})
    assert ok.status_code == 201, ok.text


@pytest.mark.slow
async def test_unauthenticated_large_bodies_cost_no_memory(tmp_path: object) -> None:
    """A real `wasync serve`: 20 MB bodies without a key, with and without a length.

    Before, each was read and parsed as JSON before the key was checked (RSS 181 →
    675 MB): now the server answers 401 from the request head and discards the rest.
    """
    server = spawn(
        ["serve", "--port", "0", "--data-dir", str(tmp_path)],
        env={"WASYNC_API_KEY": API_KEY, "WASYNC_SESSION_ENGINE": "simulator"},
    )
    try:
        process = psutil.Process(server.proc.pid)
        # Many small objects, as an attacker would send: parsed, they cost 25x their size.
        junk = b'{"k":0},' * (20 * MiB // 8)
        body = b'{"name": "x", "junk": [' + junk + b"{}]}"

        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, headers={"Content-Type": "application/json"}
        ) as http:
            assert (await http.get("/health")).status_code == 200
            before = process.memory_info().rss
            peak = RssPeak(process)
            statuses = []

            async def stream() -> AsyncIterator[bytes]:
                for i in range(0, len(body), MiB):
                    yield body[i : i + MiB]

            for _ in range(3):
                statuses.append((await http.post("/api/sessions", content=body)).status_code)
                statuses.append((await http.post("/api/sessions", content=stream())).status_code)
            health = await http.get("/health")
            after = peak.stop()
        assert statuses == [401] * 6
        assert health.status_code == 200
        growth = (after - before) / MiB
        assert growth < 50, f"RSS grew {growth:.0f} MB at its peak"
    finally:
        assert server.stop() == 0, server.output()
