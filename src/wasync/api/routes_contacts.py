"""Contacts of a session, with their avatar fields."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from wasync.api import reads
from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_runtime
from wasync.api.errors import NotFound
from wasync.api.routes_chats import chat_jid_of, session_id_of
from wasync.api.shapes import contact_out
from wasync.runtime import Runtime
from wasync.store.identities import canonical
from wasync.store.queries import MAX_PAGE

router = APIRouter(
    prefix="/api/sessions/{session}", tags=["contacts"], dependencies=[Authenticated]
)
RuntimeDep = Depends(get_runtime)
ERRORS = S.error_responses(400, 401, 404, 422)


@router.get("/contacts", response_model=S.ContactPage, responses=ERRORS)
def list_contacts(
    session: str,
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, description="`nextCursor` of the previous page."),
    search: str | None = Query(None, max_length=200, description="Part of a name or number."),
    runtime: Runtime = RuntimeDep,
) -> S.ContactPage:
    """Contacts ordered by JID (keyset pages)."""
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session)
        page = reads.list_contacts(conn, sid, limit=limit, cursor=cursor, search=search)
    return S.ContactPage(items=[contact_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/contacts/{jid}", response_model=S.ContactOut, responses=ERRORS)
def get_contact(session: str, jid: str, runtime: Runtime = RuntimeDep) -> S.ContactOut:
    """One contact by JID (any spelling) or phone number."""
    jid = chat_jid_of(jid)
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session)
        jid = canonical(conn, sid, jid)
        row = reads.contact_row(conn, sid, jid)
    if row is None:
        raise NotFound(f"no contact {jid!r} in this session")
    return contact_out(row)
