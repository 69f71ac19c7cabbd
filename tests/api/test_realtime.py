"""Live events: Socket.IO and WebSocket clients against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import httpx
import pytest
import socketio

from wasync.engines.simulator import Network

from ..waiting import eventually
from .conftest import API_KEY, LiveServer, add_simulator

LIMIT = 5


def expected_sync_chats(session: str, net: Network, limit: int) -> list[dict[str, Any]]:
    """The documented sequence: currentChat 0, then per chat "saved" and "messages saved"."""
    jids = net.chat_jids()
    n = len(jids)
    out: list[dict[str, Any]] = [
        {"sessionId": session, "nChats": n, "currentChat": 0, "messagesSynced": 0}
    ]
    for i, jid in enumerate(jids, start=1):
        out.append(
            {
                "sessionId": session,
                "nChats": n,
                "currentChat": i,
                "chatId": jid,
                "messagesSynced": 0,
            }
        )
        out.append(
            {
                "sessionId": session,
                "nChats": n,
                "currentChat": i,
                "chatId": jid,
                "messagesSynced": min(limit, net.message_count(jid)),
            }
        )
    return out


async def _client(server: LiveServer, **connect: Any) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.base_url, transports=["websocket"], wait_timeout=10, **connect)
    return client


async def test_socketio_sync_chats_reaches_only_the_joined_session(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    one = await add_simulator(runtime, "one", sync=False)
    await add_simulator(runtime, "two", sync=False)
    events: dict[str, list[tuple[str, Any]]] = {"a": [], "b": []}
    a = await _client(live_server, auth={"apiKey": API_KEY})
    b = await _client(live_server, headers={"X-Api-Key": API_KEY})
    try:
        for name, client in (("a", a), ("b", b)):
            client.on("*", lambda event, data, name=name: events[name].append((event, data)))
        assert await a.call("join-session", {"sessionId": "one"}) == {
            "ok": True,
            "sessionId": "one",
        }
        assert await b.call("join-session", {"sessionId": "two"}) == {
            "ok": True,
            "sessionId": "two",
        }
        missing = await b.call("join-session", {"sessionId": "ghost"})
        assert missing["ok"] is False and missing["error"] == "not_found"

        async with httpx.AsyncClient(base_url=live_server.base_url) as http:
            r = await http.post(
                f"/api/sessions/one/sync-chats?limitPerChat={LIMIT}",
                headers={"X-Api-Key": API_KEY},
            )
        assert r.status_code == 200 and r.json()["success"] is True
        expected = expected_sync_chats("one", one.network, LIMIT)

        def progress(name: str) -> list[Any]:
            return [data for event, data in events[name] if event == "sync_chats"]

        await eventually(lambda: len(progress("a")) >= len(expected))
        assert progress("a") == expected
        assert progress("b") == []
        assert all(e[1]["session"] == "one" for e in events["a"] if e[0] != "sync_chats")

        # Live messages go to the session's room too, as envelopes.
        await one.push_live(3)
        await eventually(lambda: any(e == "message" for e, _ in events["a"]))
        message = next(data for e, data in events["a"] if e == "message")
        assert message["event"] == "message" and message["session"] == "one"
        assert {"chatJid", "messageId", "timestamp"} <= set(message["data"])
        assert not any(e == "message" for e, _ in events["b"])
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_socketio_refuses_a_wrong_key(live_server: LiveServer) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            live_server.base_url, transports=["websocket"], auth={"apiKey": "wrong"}, wait_timeout=5
        )
    await client.disconnect()


async def _frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(10):
        while len(out) < n:
            out.append(json.loads((await ws.receive()).data))
    return out


async def test_websocket_auth_by_header_or_first_message(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    one = await add_simulator(runtime, "one", sync=False)
    url = live_server.base_url.replace("http", "ws") + "/ws?session=one"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"X-Api-Key": API_KEY}) as by_header,
        http.ws_connect(url) as by_message,
    ):
        ready = (await _frames(by_header, 1))[0]
        assert ready == {"event": "ready", "data": {"sessions": ["one"]}}
        await by_message.send_json({"apiKey": API_KEY})
        assert (await _frames(by_message, 1))[0]["event"] == "ready"
        await runtime.sync_chats("one", LIMIT)
        expected = expected_sync_chats("one", one.network, LIMIT)
        for ws in (by_header, by_message):
            frames = []
            async with asyncio.timeout(10):
                while len(frames) < len(expected):
                    frame = json.loads((await ws.receive()).data)
                    if frame["event"] == "sync_chats":
                        frames.append(frame)
            assert [f["data"] for f in frames] == expected
            assert all(f["session"] == "one" and f["id"] for f in frames)
        await by_message.send_bytes(b"\x01\x02")  # ignored, the connection stays
        await by_message.send_json({"type": "ping"})
        async with asyncio.timeout(10):
            while json.loads((await by_message.receive()).data)["event"] != "pong":
                pass


@pytest.mark.parametrize(
    ("query", "first", "code"),
    [
        ("?session=one", {"apiKey": "wrong"}, 4401),
        ("?session=one", "not json", 4401),
        ("?session=one", b"\x00binary", 4401),
        ("?session=ghost", {"apiKey": API_KEY}, 4404),
        ("?session=..", {"apiKey": API_KEY}, 4404),
    ],
)
async def test_websocket_refusals_close_with_a_code(
    live_server: LiveServer, query: str, first: Any, code: int
) -> None:
    await add_simulator(live_server.runtime, "one", sync=False)
    url = live_server.base_url.replace("http", "ws") + "/ws" + query
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        if isinstance(first, bytes):
            await ws.send_bytes(first)
        elif isinstance(first, str):
            await ws.send_str(first)
        else:
            await ws.send_json(first)
        error = json.loads((await ws.receive()).data)
        assert error["event"] == "error" and error["data"]["detail"]
        closing = await ws.receive()
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == code
