"""History on demand: load older, load full history, and a chat's sync state.

The UI's "load older" and "load full history" buttons call the two POST routes; both
answer 202 at once with the job that does the work, whose progress arrives as
`history.progress` events. An engine that cannot request history (neonize) gets a
501 with a plain sentence, never a pretend job.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_control, get_runtime
from wasync.api.errors import NotFound
from wasync.api.session_control import SessionControl
from wasync.domain.jid import to_jid
from wasync.history import ChatNotFound, history_service
from wasync.runtime import Runtime
from wasync.store.sessions import validate_session_name

router = APIRouter(
    prefix="/api",
    tags=["history"],
    dependencies=[Authenticated],
    responses=S.error_responses(400, 401, 404, 409, 422, 501, 503),
)
RuntimeDep = Depends(get_runtime)
Control = Depends(get_control)
CHAT = "/sessions/{session}/chats/{jid}"


async def _request(
    control: SessionControl, session: str, jid: str, *, full: bool, pages: int = 1
) -> dict[str, Any]:
    """Queue the work where the session runs (it knows what its engine can do)."""
    args = {"chat": to_jid(jid), "full": full, "pages": pages}
    return await control.call(session, "history_request", args)


@router.post(f"{CHAT}/history/older", status_code=202, response_model=S.HistoryRequestOut)
async def load_older(
    session: str,
    jid: str,
    pages: int = Query(1, ge=1, le=1000, description="Pages of older messages to load."),
    control: SessionControl = Control,
) -> dict[str, Any]:
    """Queue loading `pages` pages of messages older than the oldest stored one.

    `status` is `queued` (a new job), `already_queued` (a job for this chat is pending;
    it now loads at least `pages` more pages) or `fully_synced` (nothing older exists;
    `jobId` is null).
    """
    return await _request(control, session, jid, full=False, pages=pages)


@router.post(f"{CHAT}/history/full", status_code=202, response_model=S.HistoryRequestOut)
async def load_full_history(
    session: str, jid: str, control: SessionControl = Control
) -> dict[str, Any]:
    """Queue loading the whole history of the chat, back to its first message."""
    return await _request(control, session, jid, full=True)


@router.get("/sessions/{session}/sync-state")
async def session_sync_state(
    session: str,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, description="`nextCursor` of the previous page."),
    runtime: Runtime = RuntimeDep,
) -> dict[str, Any]:
    """Each chat's coverage, by last activity: messages stored, oldest and newest stored,
    fully synced or not, the open gap and the last error (the sync-state page)."""
    validate_session_name(session)
    return await history_service(runtime).session_sync_state(session, limit=limit, cursor=cursor)


@router.get(f"{CHAT}/sync-state")
async def sync_state(session: str, jid: str, runtime: Runtime = RuntimeDep) -> dict[str, Any]:
    """Newest and oldest stored message, completeness, errors, gap and backfill status."""
    try:
        return await history_service(runtime).sync_state(session, jid)
    except ChatNotFound as exc:
        raise NotFound(str(exc)) from None
