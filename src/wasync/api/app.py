"""The FastAPI application: routers, error handlers, auth, state; Socket.IO around it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import anyio.to_thread
from fastapi import FastAPI
from pydantic import Field

from wasync import __version__
from wasync.api import web
from wasync.api.body_limit import GuardBodies
from wasync.api.browser_guard import STATE_CHANGING, BrowserGuard, BrowserPolicy
from wasync.api.errors import install_error_handlers
from wasync.api.install import api_services
from wasync.api.media_cache import MediaCache
from wasync.api.realtime_socketio import SOCKETIO_PATH, SocketIOServer
from wasync.api.routers import ROUTERS
from wasync.api.schemas import Model
from wasync.runtime import Runtime

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class HealthOut(Model):
    status: Literal["ok"]
    version: str
    sessions: int = Field(description="Sessions running in this process.")
    auth: bool = Field(description="Whether the API key is required (the UI asks for it).")


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
    app.state.media_cache = MediaCache(runtime.media)
    settings = runtime.settings
    app.state.browser_policy = BrowserPolicy.build(
        auth=api_key is not None,
        bound_host=settings.host,
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=settings.allowed_origins,
    )
    app.state.socketio = SocketIOServer(hub, control, api_key, app.state.browser_policy)
    install_error_handlers(app)

    @app.get("/health", tags=["ops"], response_model=HealthOut)
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
    _document_guards(app)
    return app


def _document_guards(app: FastAPI) -> None:
    """Add to the OpenAPI schema what asgi_app's checks answer before any route runs:
    413 for a body over the cap, 403 for a state-changing request from a foreign page."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # cached by FastAPI: amended once
        error = {"$ref": "#/components/schemas/ErrorBody"}
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault(
                        "413",
                        {
                            "description": "The body is larger than WASYNC_MAX_BODY_BYTES.",
                            "content": {"application/json": {"schema": error}},
                        },
                    )
                if method.upper() in STATE_CHANGING:
                    responses.setdefault(
                        "403",
                        {
                            "description": "Sent by a web page of another origin.",
                            "content": {"application/json": {"schema": error}},
                        },
                    )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def asgi_app(app: FastAPI) -> Any:
    """What the server runs: Socket.IO at /socket.io/, the FastAPI app for the rest,
    behind the checks that must come before any route reads a request."""
    server: SocketIOServer = app.state.socketio
    settings = app.state.runtime.settings
    routes = server.asgi(app)
    guarded = GuardBodies(routes, api_key=app.state.api_key, max_bytes=settings.max_body_bytes)
    browsers = BrowserGuard(guarded, app.state.browser_policy, f"/{SOCKETIO_PATH}/")
    return ReadThreads(browsers, read_threads(settings.api_threads))


def read_threads(configured: int | None) -> int:
    return configured or max(2, os.cpu_count() or 1)


class ReadThreads:
    """Caps the threads that run the API's plain (database-reading) handlers.

    FastAPI runs them on anyio's default thread limiter, 40 threads. Their work is
    mostly Python holding the GIL, so 40 threads on 2 cores mostly contend: measured
    with bench/api.py (8 concurrent clients, a million messages), the chat list's p99
    fell from 72 ms to about 20 ms and its throughput rose from 250 to 450 requests/s
    with 2 threads. The limiter belongs to the event loop, so it is set on the first
    call, inside the loop that serves.
    """

    def __init__(self, app: Any, threads: int) -> None:
        self.app = app
        self.threads = threads
        self._loop: object | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
            self._loop = loop
        await self.app(scope, receive, send)
