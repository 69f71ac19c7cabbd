"""Live events over Socket.IO (python-socketio, ASGI), at /socket.io/.

Protocol (DESIGN.md section 7):

- connect with the API key in the auth dict (`{apiKey: "..."}`) or in a header
  (`X-Api-Key`, `Authorization: Bearer ...`); a wrong key is refused;
- emit `join-session` with `{sessionId}` (acked with `{ok, sessionId}` or
  `{ok: false, error, detail}`), `leave-session` likewise;
- receive, only for joined sessions: `sync_chats` with the contract payload
  `{sessionId, nChats, currentChat, chatId?, messagesSynced?}`, and every other bus
  topic (`message`, `chat`, `avatar`, `session.status`, ...) under its own name with
  the envelope `{id, event, session, timestamp, data}`.

Each client reads from its own bounded feed (realtime_hub.py), and its sender holds
back while the client's Engine.IO queue is long, so a slow client makes its own
feed coalesce and drop, never the server buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio
from starlette.datastructures import Headers

from wasync.api.browser_guard import BrowserPolicy
from wasync.api.deps import key_matches, presented_key
from wasync.api.realtime_hub import ClientFeed, RealtimeHub, wire_name
from wasync.api.session_control import SessionControl
from wasync.bus import BusEvent
from wasync.errors import WasyncError

log = logging.getLogger(__name__)

SOCKETIO_PATH = "socket.io"
NAMESPACE = "/"
# Packets queued for one client before its sender waits (Engine.IO's queue is unbounded).
MAX_QUEUED_PACKETS = 64
# Seconds to tell every client goodbye at shutdown; then they are dropped all the same.
CLOSE_TIMEOUT = 2.0


def room_of(session: str) -> str:
    return f"session:{session}"


def payload_of(event: BusEvent) -> dict[str, Any]:
    return event.data if event.topic == "sync.progress" else event.envelope()


def _environ_headers(environ: dict[str, Any]) -> Headers:
    scope = environ.get("asgi.scope")
    if isinstance(scope, dict):
        return Headers(scope=scope)
    raw = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    return Headers(raw)


class SocketIOServer:
    def __init__(
        self,
        hub: RealtimeHub,
        control: SessionControl,
        api_key: str | None,
        policy: BrowserPolicy | None = None,
    ) -> None:
        self.hub = hub
        self.control = control
        self.api_key = api_key
        policy = policy or BrowserPolicy.build(auth=api_key is not None, bound_host="127.0.0.1")

        def origin_allowed(origin: str | None, environ: dict[str, Any]) -> bool:
            # Engine.IO's own check, by the same rule as browser_guard.py (which runs
            # first in the server; this keeps Socket.IO closed where it is served alone).
            # No Origin: not a browser (Engine.IO also asks when it adds CORS headers).
            return origin is None or policy.origin_allowed(origin, environ.get("HTTP_HOST"))

        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            logger=False,
            engineio_logger=False,
            cors_allowed_origins=origin_allowed,
        )
        self._clients: dict[str, tuple[ClientFeed, asyncio.Task[None]]] = {}
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("join-session", self._join)
        self.sio.on("leave-session", self._leave)

    def asgi(self, other: Any) -> Any:
        """The ASGI app serving Socket.IO at /socket.io/ and everything else by `other`."""
        return socketio.ASGIApp(self.sio, other_asgi_app=other, socketio_path=SOCKETIO_PATH)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        given = auth.get("apiKey") if isinstance(auth, dict) else None
        if not isinstance(given, str) or not given:
            given = presented_key(_environ_headers(environ))
        if not key_matches(self.api_key, given):
            raise socketio.exceptions.ConnectionRefusedError(
                "unauthorized: pass the API key as auth {apiKey} or an X-Api-Key header"
            )
        feed = self.hub.open_feed()
        task = asyncio.create_task(self._send_loop(sid, feed), name=f"socketio-{sid}")
        self._clients[sid] = (feed, task)

    async def _disconnect(self, sid: str, *_reason: Any) -> None:
        client = self._clients.pop(sid, None)
        if client is None:
            return
        feed, task = client
        self.hub.close_feed(feed)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _join(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self._clients.get(sid)
        name = data.get("sessionId") if isinstance(data, dict) else None
        if client is None:
            return {"ok": False, "error": "unauthorized", "detail": "not connected"}
        if not isinstance(name, str) or not name:
            return {"ok": False, "error": "bad_request", "detail": "send {sessionId: <name>}"}
        try:
            await self.control.row(name)
        except WasyncError as exc:
            return {"ok": False, "error": "not_found", "detail": str(exc)}
        feed, _ = client
        assert feed.sessions is not None
        feed.sessions.add(name)
        await self.sio.enter_room(sid, room_of(name))
        return {"ok": True, "sessionId": name}

    async def _leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self._clients.get(sid)
        name = data.get("sessionId") if isinstance(data, dict) else None
        if client is not None and isinstance(name, str) and client[0].sessions is not None:
            client[0].sessions.discard(name)
            await self.sio.leave_room(sid, room_of(name))
        return {"ok": True, "sessionId": name}

    async def _send_loop(self, sid: str, feed: ClientFeed) -> None:
        while (event := await feed.next()) is not None:
            await self._wait_for_room(sid)
            try:
                await self.sio.emit(wire_name(event.topic), payload_of(event), to=sid)
            except Exception:
                log.debug("socket.io client %s: emit failed", sid, exc_info=True)

    async def _wait_for_room(self, sid: str) -> None:
        # Engine.IO queues packets without limit; wait here instead, so the feed
        # (bounded, coalescing) absorbs a slow client. Internals, hence the caution.
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        sockets = getattr(self.sio.eio, "sockets", {})
        while sid in self._clients:
            queue = getattr(sockets.get(eio_sid), "queue", None)
            if queue is None or queue.qsize() < MAX_QUEUED_PACKETS:
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Disconnect every client (told "io server disconnect") and forget them.

        Called as the server starts to shut down: a polling client always has a request
        open (its long poll, up to 25 s), which a graceful shutdown would wait out.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                for sid in list(self._clients):
                    await self.sio.disconnect(sid)
                # Then Engine.IO's sockets (some never reached Socket.IO), without waiting
                # for a client to fetch the close packet: one that has just left on the
                # disconnect above never will (Engine.IO's own disconnect() waits for it).
                for socket in list(getattr(self.sio.eio, "sockets", {}).values()):
                    await socket.close(wait=False)
        for sid in list(self._clients):
            await self._disconnect(sid)
