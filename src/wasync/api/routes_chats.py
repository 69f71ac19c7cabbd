"""Chats, their messages and group participants, read from the mirror (keyset pages).

Handlers are plain functions: FastAPI runs them on its thread pool, and each does
its reads in one read transaction, so a page is a consistent snapshot.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import Connection, func, select

from wasync.api import reads
from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_runtime
from wasync.api.errors import NotFound
from wasync.api.schemas import json_response
from wasync.api.shapes import chat_data, chat_detail, message_data, participant_out
from wasync.domain.jid import to_jid
from wasync.domain.models import MessageKind
from wasync.errors import DomainError
from wasync.runtime import Runtime
from wasync.store import queries
from wasync.store.identities import canonical, forms_of
from wasync.store.schema import group_participants
from wasync.store.sessions import get_session, validate_session_name

router = APIRouter(prefix="/api/sessions/{session}", tags=["chats"], dependencies=[Authenticated])
RuntimeDep = Depends(get_runtime)
ERRORS = S.error_responses(400, 401, 404, 422)
ChatKindFilter = Literal["individual", "group", "broadcast", "newsletter"]


def session_id_of(conn: Connection, session: str, runtime: Runtime | None = None) -> int:
    """The id of a session by name; a running session's is known without a query."""
    validate_session_name(session)
    handle = runtime.sessions.get(session) if runtime is not None else None
    if handle is not None:
        return handle.session_id
    return get_session(conn, session).id


def chat_jid_of(jid: str) -> str:
    """The canonical JID of a path segment (a JID in any spelling, or a phone number);
    `canonical()` then gives the key a person is kept under (LID or phone JID)."""
    return to_jid(jid)


def _require_chat(conn: Connection, sid: int, jid: str) -> dict[str, Any]:
    row = reads.chat_row(conn, sid, jid)
    if row is None:
        raise NotFound(f"no chat {jid!r} in this session")
    return row


@router.get("/chats", response_model=S.ChatPage, responses=ERRORS)
def list_chats(
    session: str,
    limit: int = Query(50, ge=1, le=queries.MAX_PAGE),
    cursor: str | None = Query(None, description="`nextCursor` of the previous page."),
    search: str | None = Query(None, max_length=200, description="Part of the chat's name."),
    kind: ChatKindFilter | None = Query(None, description="Only chats of this kind."),
    runtime: Runtime = RuntimeDep,
) -> Response:
    """Chats by last activity, newest first, with a preview of the last message."""
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session, runtime)
        page = queries.list_chats(conn, sid, limit=limit, cursor=cursor, search=search, kind=kind)
        jids = [row["jid"] for row in page.items]
        unnamed = [row["jid"] for row in page.items if not row["name"]]
        names = reads.contact_names(conn, sid, unnamed)
        last = reads.last_messages(conn, sid, jids)
        forms = forms_of(conn, sid, jids)
    items = [chat_data(row, names, last.get(row["jid"]), forms) for row in page.items]
    return json_response({"items": items, "nextCursor": page.next_cursor})


@router.get("/chats/{jid}", response_model=S.ChatDetail, responses=ERRORS)
def get_chat(session: str, jid: str, runtime: Runtime = RuntimeDep) -> S.ChatDetail:
    """One chat, with its group details and sync state (what is mirrored of it)."""
    jid = chat_jid_of(jid)
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session)
        jid = canonical(conn, sid, jid)
        row = _require_chat(conn, sid, jid)
        names = reads.contact_names(conn, sid, [jid])
        last = reads.last_messages(conn, sid, [jid]).get(jid)
        group = reads.group_row(conn, sid, jid)
        members = None
        if group is not None:
            p = group_participants.c
            members = conn.execute(
                select(func.count()).where(p.session_id == sid, p.group_jid == jid)
            ).scalar_one()
        state = queries.get_sync_state(conn, sid, jid)
        forms = forms_of(conn, sid, [jid])
    return chat_detail(row, names, last, group, members, state, forms)


@router.get("/chats/{jid}/messages", response_model=S.MessagePage, responses=ERRORS)
def list_messages(
    session: str,
    jid: str,
    limit: int = Query(50, ge=1, le=queries.MAX_PAGE),
    before: str | None = Query(None, description="Older than this cursor (`nextCursor`)."),
    after: str | None = Query(None, description="Newer than this cursor; oldest first."),
    around: str | None = Query(
        None,
        max_length=256,
        description="A message id: the page holds it with as many newer messages as fit "
        "in half the page, newest first (`newerCursor` pages forwards).",
    ),
    runtime: Runtime = RuntimeDep,
) -> Response:
    """Messages newest first (`before` pages back in time); with `after`, oldest first;
    with `around`, the page centred on one message."""
    if sum(1 for x in (before, after, around) if x) > 1:
        raise DomainError("give either `before`, `after` or `around`, one of them only")
    jid = chat_jid_of(jid)
    newer_cursor = None
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session, runtime)
        jid = canonical(conn, sid, jid)
        if around:
            found = queries.list_messages_around(conn, sid, jid, around, limit=limit)
            if found is None:
                _require_chat(conn, sid, jid)
                raise NotFound(f"no message {around!r} stored in this chat")
            page, newer_cursor = found
        else:
            page = queries.list_messages(conn, sid, jid, limit=limit, before=before, after=after)
        if not page.items:  # an empty page: tell an unknown chat from an empty one
            _require_chat(conn, sid, jid)
        # Placeholders (an edit or reaction that overtook its message) are no messages.
        rows = [r for r in page.items if r["kind"] != MessageKind.UNKNOWN.value]
        quoted = reads.quoted_messages(
            conn, sid, jid, [r["quoted_id"] for r in rows if r["quoted_id"]]
        )
        senders = {r["sender_jid"] for r in rows if not r["from_me"]}
        senders |= {q["sender_jid"] for q in quoted.values() if not q["from_me"]}
        names = reads.contact_names(conn, sid, senders)
        pictures = reads.contact_pictures(conn, sid, senders)
        reactions = reads.reactions_of(conn, sid, jid, [r["message_id"] for r in rows])
        people = {r["sender_jid"] for r in rows}
        people.update(x["senderJid"] for found in reactions.values() for x in found)
        forms = forms_of(conn, sid, people)
    items = [message_data(session, r, names, reactions, forms, quoted, pictures) for r in rows]
    body: dict[str, Any] = {"items": items, "nextCursor": page.next_cursor}
    if around:
        body["newerCursor"] = newer_cursor
    return json_response(body)


@router.get("/chats/{jid}/participants", response_model=S.ParticipantList, responses=ERRORS)
def list_participants(session: str, jid: str, runtime: Runtime = RuntimeDep) -> S.ParticipantList:
    """The members of a group chat, admins first."""
    jid = chat_jid_of(jid)
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session)
        jid = canonical(conn, sid, jid)
        if reads.group_row(conn, sid, jid) is None:
            _require_chat(conn, sid, jid)
            raise NotFound(f"{jid!r} is not a group: only groups have participants")
        rows = reads.participants(conn, sid, jid)
        names = reads.contact_names(conn, sid, [r["participant_jid"] for r in rows])
    return S.ParticipantList(group_jid=jid, items=[participant_out(r, names) for r in rows])
