"""The FastAPI application: routers, error handlers, auth, state; Socket.IO around it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from wasync import __version__
from wasync.api import web
from wasync.api.errors import install_error_handlers
from wasync.api.install import api_services
from wasync.api.media_cache import MediaCache
from wasync.api.realtime_socketio import SocketIOServer
from wasync.api.routers import ROUTERS
from wasync.runtime import Runtime

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = """Mirror WhatsApp accounts into your own SQL database and keep it live.

Every route except `/health` needs the API key: an `X-Api-Key` header or
`Authorization: Bearer <key>`. Errors are JSON `{error, detail}`.

Live events: Socket.IO at `/socket.io/` (emit `join-session` with `{sessionId}`,
receive `sync_chats`, `message`, `chat`, `avatar`, `session.status`, ...) or a
plain WebSocket at `/ws?session=NAME` (see the README).
"""


def create_app(
    runtime: Runtime, *, api_key: str | None, lifespan: Lifespan | None = None
) -> FastAPI:
    """`api_key=None` switches authentication off (only allowed on loopback)."""
    control, hub = api_services(runtime)
    app = FastAPI(
        title="wasync",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.api_key = api_key
    app.state.control = control
    app.state.hub = hub
    app.state.media_cache = MediaCache(runtime.settings.data_dir)
    app.state.socketio = SocketIOServer(hub, control, api_key)
    install_error_handlers(app)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, object]:
        """Liveness, without the API key: also tells the UI whether it needs one."""
        return {
            "status": "ok",
            "version": __version__,
            "sessions": len(runtime.sessions),
            "auth": api_key is not None,
        }

    for router in ROUTERS:
        app.include_router(router)
    web.install(app)
    return app


def asgi_app(app: FastAPI) -> Any:
    """What the server runs: Socket.IO at /socket.io/, the FastAPI app for the rest."""
    server: SocketIOServer = app.state.socketio
    return server.asgi(app)
