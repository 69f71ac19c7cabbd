"""Live events over a plain WebSocket at `/ws?session=NAME` (for the UI and for clients
without Socket.IO).

- Auth: an `X-Api-Key` or `Authorization: Bearer` header on the upgrade request, or
  (browsers cannot set headers on a WebSocket) a first message `{"apiKey": "..."}`
  within 10 seconds. A wrong or missing key closes with code 4401.
- `session` may be repeated; without it the client receives every session's events.
  An unknown session closes with code 4404.
- Frames from the server are JSON envelopes `{id, event, session, timestamp, data}`;
  `event` is `sync_chats` for sync progress (data: the contract payload) and the bus
  topic otherwise. The first frame is `{"event": "ready", "data": {"sessions": [...]}}`.
- A client may send `{"type": "ping"}`; the server answers `{"event": "pong"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from wasync.api.deps import key_matches, presented_key
from wasync.api.realtime_hub import ClientFeed, RealtimeHub, wire_name
from wasync.api.session_control import SessionControl
from wasync.errors import WasyncError

AUTH_TIMEOUT = 10.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404

router = APIRouter()


@router.websocket("/ws")
async def live_events(
    websocket: WebSocket, session: list[str] | None = Query(default=None)
) -> None:
    hub: RealtimeHub = websocket.app.state.hub
    control: SessionControl = websocket.app.state.control
    await websocket.accept()
    if not await _authenticate(websocket):
        return
    names = sorted(set(session or ()))
    for name in names:
        try:
            await control.row(name)
        except WasyncError as exc:
            await _refuse(websocket, CLOSE_NOT_FOUND, "not_found", str(exc))
            return
    feed = hub.open_feed(names or None)
    lock = asyncio.Lock()
    sender = asyncio.create_task(_send_loop(websocket, feed, lock), name="ws-sender")
    try:
        async with lock:
            await websocket.send_json({"event": "ready", "data": {"sessions": names or None}})
        await _receive_loop(websocket, lock)
    except WebSocketDisconnect:
        pass
    finally:
        hub.close_feed(feed)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def _authenticate(websocket: WebSocket) -> bool:
    expected: str | None = websocket.app.state.api_key
    if key_matches(expected, presented_key(websocket.headers)):
        return True
    given = None
    try:
        first = await asyncio.wait_for(_receive_text(websocket), AUTH_TIMEOUT)
        message = json.loads(first) if first is not None else None
        if isinstance(message, dict) and isinstance(message.get("apiKey"), str):
            given = message["apiKey"]
    except (TimeoutError, ValueError):
        pass
    except WebSocketDisconnect:
        return False
    if key_matches(expected, given):
        return True
    await _refuse(
        websocket,
        CLOSE_UNAUTHORIZED,
        "unauthorized",
        'missing or wrong API key: send an X-Api-Key header or a first message {"apiKey": ...}',
    )
    return False


async def _refuse(websocket: WebSocket, code: int, error: str, detail: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json({"event": "error", "data": {"error": error, "detail": detail}})
        await websocket.close(code, reason=detail[:120])


async def _send_loop(websocket: WebSocket, feed: ClientFeed, lock: asyncio.Lock) -> None:
    # A slow reader makes send_json wait (TCP back-pressure); meanwhile its feed fills,
    # coalesces and drops, and nobody else waits.
    while (event := await feed.next()) is not None:
        frame: dict[str, Any] = event.envelope()
        frame["event"] = wire_name(event.topic)
        async with lock:
            await websocket.send_json(frame)


async def _receive_text(websocket: WebSocket) -> str | None:
    """The next frame's text; None for a binary frame (no client of ours sends one)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if isinstance(text, str) else None


async def _receive_loop(websocket: WebSocket, lock: asyncio.Lock) -> None:
    while True:
        text = await _receive_text(websocket)
        if text is None:
            continue
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == "ping":
            async with lock:
                await websocket.send_json({"event": "pong"})
