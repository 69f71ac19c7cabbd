"""`GET /api/sessions/{session}/search`: messages holding every word, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_runtime
from wasync.api.routes_chats import chat_jid_of, session_id_of
from wasync.api.schemas import json_response
from wasync.runtime import Runtime
from wasync.search.results import search_page
from wasync.store import search
from wasync.store.identities import canonical

router = APIRouter(prefix="/api/sessions/{session}", tags=["search"], dependencies=[Authenticated])


@router.get("/search", response_model=S.SearchPage, responses=S.error_responses(400, 401, 404, 422))
def search_messages(
    session: str,
    q: str = Query(
        ...,
        min_length=1,
        max_length=1000,
        description="Words to find, all of them (letters and digits; case does not matter).",
    ),
    chat: str | None = Query(None, description="Only this chat (a JID or phone number)."),
    before: str | None = Query(None, description="Older than this cursor (`nextCursor`)."),
    limit: int = Query(20, ge=1, le=search.MAX_LIMIT),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    """Messages of the session (or one chat) holding every word, newest first, each
    with its chat. On SQLite a message appears about a second after it is stored."""
    chat_jid = chat_jid_of(chat) if chat else None
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session, runtime)
        if chat_jid is not None:
            chat_jid = canonical(conn, sid, chat_jid)  # a LID or a number: the same person
        page = search_page(conn, session, sid, q, chat_jid=chat_jid, before=before, limit=limit)
    return json_response(page)
