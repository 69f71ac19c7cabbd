"""Errors as JSON `{error, detail}` with the right status; never a trace for bad input."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from wasync.engines.base import (
    CapabilityMissing,
    EngineError,
    LoggedOutError,
    MediaGone,
    NotConnected,
)
from wasync.errors import (
    ConfigError,
    Conflict,
    DomainError,
    NotFound,
    StoreError,
    WasyncError,
)
from wasync.media.store import MediaTooLarge
from wasync.store.sessions import SessionNotFound

log = logging.getLogger(__name__)

__all__ = ["Conflict", "NotFound", "error_response", "install_error_handlers"]


def error_response(
    status: int,
    error: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **more: object,
) -> JSONResponse:
    """Every error body: a short code, a sentence for people, and maybe more fields
    (a 422's `errors`, one object per parameter problem)."""
    return JSONResponse(
        {"error": error, "detail": detail, **more}, status_code=status, headers=headers
    )


def _where(loc: list[object]) -> str:
    """("query", "limit") as people read it: query parameter 'limit'."""
    if not loc:
        return "the request"
    place, *rest = loc
    name = ".".join(str(x) for x in rest)
    kinds = {"query": "query parameter", "path": "path parameter", "header": "header"}
    if place == "body":
        return f"body field '{name}'" if name else "the body"
    return f"{kinds.get(str(place), str(place))} '{name}'" if name else str(place)


def validation_sentence(problems: list[dict[str, Any]]) -> str:
    """One sentence for a list of parameter problems: the first, and how many more."""
    if not problems:
        return "the request is invalid."
    first = problems[0]
    msg = str(first["msg"])
    sentence = f"{_where(first['loc'])}: {msg[:1].lower()}{msg[1:]}"
    if len(problems) > 1:
        others = len(problems) - 1
        sentence += f" (and {others} more problem{'s' if others > 1 else ''}, see errors)"
    return sentence + "."


def _status_of(exc: WasyncError) -> tuple[int, str]:
    if isinstance(exc, SessionNotFound | NotFound):
        return 404, "not_found"
    if isinstance(exc, Conflict):
        return 409, "conflict"
    if isinstance(exc, DomainError):
        return 400, "bad_request"
    if isinstance(exc, CapabilityMissing):
        return 501, "not_available"
    if isinstance(exc, MediaGone):
        return 410, "gone"
    if isinstance(exc, NotConnected):
        return 503, "not_connected"
    if isinstance(exc, LoggedOutError):
        return 409, "logged_out"
    if isinstance(exc, ConfigError):
        return 400, "bad_request"
    if isinstance(exc, EngineError):
        return 502, "engine_error"
    if isinstance(exc, MediaTooLarge):
        return 507, "too_large_to_store"
    if isinstance(exc, StoreError):
        return 503, "store_error"
    return 500, "error"


class RefuseNul:
    """400 for a URL with a NUL character in its path or query, before any route.

    No name, JID, cursor or search holds one, SQLite would take it and PostgreSQL
    would refuse it with an error: better one clear answer for every route alike.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            response = error_response(400, "bad_request", "a URL may not contain NUL characters")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(RefuseNul)

    @app.exception_handler(WasyncError)
    async def _wasync(request: Request, exc: WasyncError) -> JSONResponse:
        status, code = _status_of(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(status, code, str(exc))

    # Starlette's HTTPException is the base of FastAPI's and also covers unknown routes.
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }
        if exc.status_code == 404 and exc.detail == "Not Found":
            detail = f"nothing at {request.url.path}: see /docs for the API's paths"
        elif exc.status_code == 405 and exc.detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        else:
            detail = str(exc.detail)
        return error_response(
            exc.status_code, code.get(exc.status_code, "error"), detail, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return error_response(
            422, "invalid_request", validation_sentence(problems), errors=problems
        )

    # A value the database refuses (PostgreSQL: a NUL in a JSON body, a number out of
    # range) is the request's fault, not the server's.
    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid value"
        return error_response(400, "bad_request", f"the database refused a value: {reason}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "unexpected server error; see the logs")
