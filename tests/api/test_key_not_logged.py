"""The API key never appears in a log line, at any level.

A real `wasync serve` runs with every logger enabled at every level (uvicorn's
`trace` included, and the libraries' own loggers), its whole output captured; clients
present the key every way there is: headers, the UI's first WebSocket message,
Socket.IO's auth over both transports, and wrong keys. Then the output is searched.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import httpx
import pytest
import socketio

from .conftest import API_KEY
from .server_process import spawn

# Every logger enabled for every level, printing to stderr.
EVERYTHING = """
import logging, sys
logging.basicConfig(level=1, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
logging.Logger.isEnabledFor = lambda self, level: True
from wasync.cli import app
app(sys.argv[1:], prog_name="wasync")
"""


@pytest.mark.slow
async def test_the_key_is_never_logged(tmp_path: Path) -> None:
    server = spawn(
        ["serve", "--port", "0", "--data-dir", str(tmp_path), "--log-level", "trace"],
        env={"WASYNC_API_KEY": API_KEY, "WASYNC_SESSION_ENGINE": "simulator"},
        command=[sys.executable, "-c", EVERYTHING],
    )
    try:
        base = server.base_url
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/api/sessions", headers={"X-Api-Key": API_KEY})).is_success
            bearer = {"Authorization": f"Bearer {API_KEY}"}
            assert (
                await http.post("/api/sessions", json={"name": "s1"}, headers=bearer)
            ).is_success
            wrong = await http.get("/api/sessions", headers={"X-Api-Key": API_KEY[:-1] + "!"})
            assert wrong.status_code == 401
        async with aiohttp.ClientSession() as web:
            # The UI's way: the key as the first message.
            async with web.ws_connect(f"{base}/ws") as ws:
                await ws.send_str(json.dumps({"apiKey": API_KEY}))
                assert (await ws.receive_json(timeout=10))["event"] == "ready"
            async with web.ws_connect(f"{base}/ws", headers={"X-Api-Key": API_KEY}) as ws:
                assert (await ws.receive_json(timeout=10))["event"] == "ready"
        for transports in (["websocket"], ["polling"]):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                base, auth={"apiKey": API_KEY}, transports=transports, wait_timeout=10
            )
            ack = await client.call("join-session", {"sessionId": "s1"}, timeout=10)
            assert ack["ok"], ack
            await client.disconnect()
        await asyncio.sleep(0.5)  # let the last lines be written
    finally:
        assert server.stop() == 0, server.output()[-3000:]
    output = server.output()
    assert "DEBUG" in output and len(output.splitlines()) > 100  # it did log, a lot
    assert API_KEY not in output
    assert API_KEY[:12] not in output  # not even the start of it
