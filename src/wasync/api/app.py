"""The FastAPI application: routers, error handlers, auth, state."""

from __future__ import annotations

from fastapi import FastAPI

from wasync import __version__
from wasync.api.errors import install_error_handlers
from wasync.api.routers import ROUTERS
from wasync.runtime import Runtime


def create_app(runtime: Runtime, *, api_key: str | None) -> FastAPI:
    """`api_key=None` switches authentication off (only allowed on loopback)."""
    app = FastAPI(
        title="wasync",
        version=__version__,
        description="Mirror WhatsApp accounts into your own SQL database and keep it live.",
    )
    app.state.runtime = runtime
    app.state.api_key = api_key
    install_error_handlers(app)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "sessions": len(runtime.sessions)}

    for router in ROUTERS:
        app.include_router(router)
    return app
