"""SIGTERM with live clients connected: they are closed first, so nothing is waited out.

A Socket.IO client on the polling transport always has a request open (the long
poll, up to 25 s); uvicorn's graceful shutdown waited for it until its own timeout
(10 s) and then cancelled it, which made a stop take ~11 s, past Docker's 10 s.
The server now closes its live clients as it starts to shut down. The duration is
bench/shutdown.py's business; here: no timeout is waited out, and clients are told.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest
import socketio

from .conftest import API_KEY
from .server_process import spawn


@pytest.mark.slow
async def test_sigterm_closes_live_clients_instead_of_waiting_for_them(tmp_path: Path) -> None:
    server = spawn(
        ["serve", "--port", "0", "--data-dir", str(tmp_path)],
        env={"WASYNC_API_KEY": API_KEY, "WASYNC_SESSION_ENGINE": "simulator"},
    )
    reasons: list[str] = []
    polling = socketio.AsyncClient(reconnection=False)
    try:

        @polling.event
        async def disconnect(reason: str = "") -> None:
            reasons.append(str(reason))

        await polling.connect(
            server.base_url, auth={"apiKey": API_KEY}, transports=["polling"], wait_timeout=10
        )
        async with aiohttp.ClientSession() as web:
            ws = await web.ws_connect(f"{server.base_url}/ws")
            await ws.send_str(json.dumps({"apiKey": API_KEY}))
            assert (await ws.receive_json(timeout=10))["event"] == "ready"
            await asyncio.sleep(0.5)  # the long poll is open now
            server.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):  # bounds the test, not the server
                while server.proc.poll() is None:
                    await asyncio.sleep(0.05)
                closing = await ws.receive()
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await ws.close()
        async with asyncio.timeout(10):
            while not reasons:
                await asyncio.sleep(0.05)
    finally:
        if polling.connected:
            await polling.disconnect()
        code = server.stop()
    output = server.output()
    assert code == 0, output
    assert "timeout graceful shutdown exceeded" not in output, output
    assert "Cancel" not in output, output
    assert reasons == [socketio.AsyncClient.reason.SERVER_DISCONNECT], reasons
