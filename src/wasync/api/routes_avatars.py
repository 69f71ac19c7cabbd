"""Profile pictures over HTTP: check one JID now, queue a whole session, serve the files.

- `POST /api/sessions/{session}/avatars/sync` queues every contact and chat (202).
- `POST /api/sessions/{session}/avatars/{jid}` checks one JID now, through the
  session's rate limiter, and answers the outcome (a JID or a phone number).
- `GET /api/sessions/{session}/avatars` the session's avatar status.
- `GET /media/avatars/{session}/{file}` the stored JPEG, with an ETag (SHA-256 of
  the bytes) and 304 on If-None-Match. It needs the API key like everything else,
  unless WASYNC_PUBLIC_AVATARS is true; never as a query parameter, where keys leak
  into logs and browser history.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_control, get_runtime, key_matches, presented_key
from wasync.api.errors import error_response
from wasync.api.session_control import SessionControl
from wasync.avatars import avatar_service
from wasync.avatars.enqueue import has_avatar
from wasync.avatars.fetch import Outcome
from wasync.avatars.status import session_status
from wasync.avatars.storage import AvatarStorage
from wasync.domain.jid import to_jid
from wasync.errors import DomainError
from wasync.runtime import Runtime
from wasync.store.sessions import get_session

router = APIRouter(
    tags=["avatars"],
    dependencies=[Authenticated],
    responses=S.error_responses(400, 401, 404, 422, 501, 503),
)
media_router = APIRouter(tags=["avatars"])
RuntimeDep = Depends(get_runtime)
# Browsers keep a picture this long before asking again (with If-None-Match).
CACHE_SECONDS = 300


@router.post("/api/sessions/{session}/avatars/sync", status_code=202, response_model=S.EnqueuedOut)
async def enqueue_session_avatars(
    session: str, control: SessionControl = Depends(get_control)
) -> dict[str, int]:
    """Queue a picture check of every contact and chat of the session."""
    answer = await control.call(session, "avatars_sync")
    return {"enqueued": int(answer["enqueued"])}


@router.get("/api/sessions/{session}/avatars")
async def avatar_status(session: str, runtime: Runtime = RuntimeDep) -> dict[str, Any]:
    """Jobs by state, pictures stored / none / never checked, pace and recent errors."""
    service = avatar_service(runtime)

    def read() -> dict[str, Any]:
        with runtime.db.read() as conn:
            row = get_session(conn, session)
            return session_status(conn, row.id, service.config.pace_for(session), time.time())

    status = await asyncio.to_thread(read)
    live = service.queue_stats()["sessions"].get(session)
    if live is not None:
        status.update(currentRate=live["currentRate"], pausedFor=live["pausedFor"], running=True)
    return status


class AvatarCheckOut(S.Model):
    jid: str
    outcome: Literal["new", "unchanged", "none", "rate_limited", "failed"]
    profile_picture: str | None = Field(description="/media/avatars/... path, 'none' or null.")
    profile_picture_id: str | None
    profile_picture_timestamp: int | None
    queued: bool = Field(description="Whether the check was also queued for later.")
    error: str | None = Field(default=None, description="Why it failed (outcome failed).")
    retry_after: float | None = Field(default=None, description="Seconds (rate_limited).")


@router.post("/api/sessions/{session}/avatars/{jid}", responses={200: {"model": AvatarCheckOut}})
async def check_avatar(
    session: str, jid: str, control: SessionControl = Depends(get_control)
) -> Response:
    """Check one JID (or phone number) now and answer what happened.

    `outcome` is new, unchanged, none, rate_limited or failed; `queued` says the check
    was also queued to happen later (rate limited, offline or a transient failure).
    """
    canonical = to_jid(jid)
    if not has_avatar(canonical):
        raise DomainError(f"{canonical} has no profile picture (only people and groups do)")
    # Through the limiter of the node that runs the session: the rate holds cluster-wide.
    body = await control.call(session, "avatar_check", {"jid": canonical})
    headers = {}
    retry_after = body.get("retryAfter")
    if body.get("outcome") == Outcome.RATE_LIMITED.value and retry_after is not None:
        headers["Retry-After"] = str(max(1, round(float(retry_after))))
    return JSONResponse(body, headers=headers)


# GET and HEAD are two routes, each with its own operation id (one route with both
# methods gave the OpenAPI document the same id twice).
@media_router.head(
    "/media/avatars/{session}/{file}",
    operation_id="avatar_file_head",
    response_class=Response,
    responses={
        200: {"description": "The stored JPEG's headers, with its ETag."},
        304: {"description": "Not modified: If-None-Match names the current ETag."},
        **S.error_responses(401, 404, 422),
    },
)
@media_router.get(
    "/media/avatars/{session}/{file}",
    operation_id="avatar_file",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The stored JPEG, with an ETag."},
        304: {"description": "Not modified: If-None-Match names the current ETag."},
        **S.error_responses(401, 404, 422),
    },
)
async def avatar_file(session: str, file: str, request: Request) -> Response:
    """A stored profile picture (JPEG)."""
    runtime: Runtime = request.app.state.runtime
    public = runtime.settings.public_avatars
    if not public and not key_matches(request.app.state.api_key, presented_key(request.headers)):
        return error_response(
            401,
            "unauthorized",
            "missing or wrong API key: send X-Api-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    storage = AvatarStorage(runtime.media)
    # Size and SHA-256 first: a 304 or a HEAD never reads the picture itself.
    found = await asyncio.to_thread(storage.stat_served, session, file)
    if found is None:
        return error_response(404, "not_found", f"session {session!r} has no avatar {file!r}")
    digest = found.sha256
    headers = {
        "ETag": f'"{digest}"',
        "Cache-Control": f"{'public' if public else 'private'}, max-age={CACHE_SECONDS}",
        "X-Content-Type-Options": "nosniff",
    }
    if _matches(request.headers.get("if-none-match"), digest):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(found.size)
        return Response(status_code=200, headers=headers, media_type="image/jpeg")
    key = storage.served_key(session, file)
    data = await asyncio.to_thread(runtime.media.get, key) if key is not None else None
    if data is None:  # removed in between
        return error_response(404, "not_found", f"session {session!r} has no avatar {file!r}")
    if hashlib.sha256(data).hexdigest() != digest:  # replaced in between: name the new one
        headers["ETag"] = f'"{hashlib.sha256(data).hexdigest()}"'
    return Response(data, media_type="image/jpeg", headers=headers)


def _matches(if_none_match: str | None, digest: str) -> bool:
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/").strip('"') == digest:
            return True
    return False
