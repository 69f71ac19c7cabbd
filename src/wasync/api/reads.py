"""Reads the API needs beyond store/queries.py: single rows, names, previews, reactions.

Every query here is an index lookup bounded by a page (at most MAX_PAGE keys), so a
page costs the same on a mirror of a thousand messages or of millions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select

from wasync.domain.models import MessageKind
from wasync.store.pagination import decode_cursor, encode_cursor
from wasync.store.queries import MAX_PAGE, Page
from wasync.store.schema import chats, contacts, group_participants, groups, messages, reactions

_PREVIEW_COLUMNS = (
    messages.c.message_id,
    messages.c.sender_jid,
    messages.c.from_me,
    messages.c.timestamp,
    messages.c.kind,
    messages.c.text,
    messages.c.push_name,
    messages.c.media_filename,
    messages.c.revoked_at,
)


def chat_row(conn: Connection, session_id: int, jid: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(chats).where(chats.c.session_id == session_id, chats.c.jid == jid)
    ).one_or_none()
    return dict(row._mapping) if row is not None else None


def chat_rows(conn: Connection, session_id: int, jids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Several chats of a session by JID (those that exist)."""
    wanted = sorted(set(jids))
    if not wanted:
        return {}
    found = conn.execute(
        select(chats).where(chats.c.session_id == session_id, chats.c.jid.in_(wanted))
    )
    return {r.jid: dict(r._mapping) for r in found}


def group_row(conn: Connection, session_id: int, jid: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(groups).where(groups.c.session_id == session_id, groups.c.jid == jid)
    ).one_or_none()
    return dict(row._mapping) if row is not None else None


def contact_row(conn: Connection, session_id: int, jid: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(contacts).where(contacts.c.session_id == session_id, contacts.c.jid == jid)
    ).one_or_none()
    return dict(row._mapping) if row is not None else None


_c = contacts.c
# Built once: these run on every page, and building a statement costs more than running it.
_CONTACT_NAMES = select(_c.jid, _c.name, _c.business_name, _c.push_name, _c.phone).where(
    _c.session_id == bindparam("sid"), _c.jid.in_(bindparam("jids", expanding=True))
)


def contact_names(conn: Connection, session_id: int, jids: Iterable[str]) -> dict[str, str]:
    """The best human name of each contact: address book, business, then push name."""
    wanted = sorted(set(jids))
    if not wanted:
        return {}
    out = {}
    for r in conn.execute(_CONTACT_NAMES, {"sid": session_id, "jids": wanted}):
        name = r.name or r.business_name or r.push_name or (f"+{r.phone}" if r.phone else None)
        if name:
            out[r.jid] = name
    return out


_m = messages.c
_NEWEST_ID = (
    select(_m.id)
    .where(
        _m.session_id == bindparam("sid"),
        _m.chat_jid == chats.c.jid,
        _m.kind != MessageKind.UNKNOWN.value,
    )
    .order_by(_m.timestamp.desc(), _m.id.desc())
    .limit(1)
    .scalar_subquery()
)
_LAST_MESSAGES = select(_m.chat_jid, *_PREVIEW_COLUMNS).where(
    _m.id.in_(
        select(_NEWEST_ID).where(
            chats.c.session_id == bindparam("sid"),
            chats.c.jid.in_(bindparam("jids", expanding=True)),
        )
    )
)


def last_messages(
    conn: Connection, session_id: int, chat_jids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The newest real message of each chat: one statement, one index seek per chat."""
    jids = sorted(set(chat_jids))
    if not jids:
        return {}
    rows = conn.execute(_LAST_MESSAGES, {"sid": session_id, "jids": jids})
    return {row.chat_jid: dict(row._mapping) for row in rows}


_r = reactions.c
_REACTIONS = (
    select(_r.target_sender_jid, _r.target_message_id, _r.sender_jid, _r.emoji, _r.timestamp)
    .where(
        _r.session_id == bindparam("sid"),
        _r.chat_jid == bindparam("chat"),
        _r.target_message_id.in_(bindparam("ids", expanding=True)),
        _r.emoji.is_not(None),
    )
    .order_by(_r.timestamp)
)


def reactions_of(
    conn: Connection, session_id: int, chat_jid: str, message_ids: Iterable[str]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Current reactions keyed by (target sender, target message id)."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in conn.execute(_REACTIONS, {"sid": session_id, "chat": chat_jid, "ids": ids}):
        out.setdefault((row.target_sender_jid, row.target_message_id), []).append(
            {"senderJid": row.sender_jid, "emoji": row.emoji, "timestamp": row.timestamp}
        )
    return out


_QUOTED = select(
    _m.id,
    _m.chat_jid,
    _m.sender_jid,
    _m.message_id,
    _m.from_me,
    _m.timestamp,
    _m.kind,
    _m.text,
    _m.push_name,
    _m.media_filename,
    _m.revoked_at,
).where(
    _m.session_id == bindparam("sid"),
    _m.chat_jid == bindparam("chat"),
    _m.message_id.in_(bindparam("ids", expanding=True)),
    _m.kind != MessageKind.UNKNOWN.value,
)


def quoted_messages(
    conn: Connection, session_id: int, chat_jid: str, message_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The stored messages that replies of a page quote, by message id."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    rows = conn.execute(_QUOTED, {"sid": session_id, "chat": chat_jid, "ids": ids})
    return {row.message_id: dict(row._mapping) for row in rows}


_CONTACT_PICTURES = select(_c.jid, _c.profile_picture, _c.profile_picture_timestamp).where(
    _c.session_id == bindparam("sid"),
    _c.jid.in_(bindparam("jids", expanding=True)),
    _c.profile_picture.is_not(None),
)


def contact_pictures(
    conn: Connection, session_id: int, jids: Iterable[str]
) -> dict[str, tuple[str, int | None]]:
    """The stored profile picture (path, timestamp) of each contact that has one."""
    wanted = sorted(set(jids))
    if not wanted:
        return {}
    rows = conn.execute(_CONTACT_PICTURES, {"sid": session_id, "jids": wanted})
    return {
        r.jid: (r.profile_picture, r.profile_picture_timestamp)
        for r in rows
        if r.profile_picture != "none"  # 'none': WhatsApp has no picture of them
    }


def find_messages(
    conn: Connection, session_id: int, chat_jid: str, message_id: str, sender_jid: str | None
) -> list[dict[str, Any]]:
    m = messages.c
    stmt = select(messages).where(
        m.session_id == session_id, m.chat_jid == chat_jid, m.message_id == message_id
    )
    if sender_jid is not None:
        stmt = stmt.where(m.sender_jid == sender_jid)
    return [dict(r._mapping) for r in conn.execute(stmt.limit(2))]


def list_contacts(
    conn: Connection,
    session_id: int,
    *,
    limit: int = 100,
    cursor: str | None = None,
    search: str | None = None,
) -> Page:
    """Contacts by JID; keyset on jid. `search` matches any of their names or the phone."""
    limit = max(1, min(limit, MAX_PAGE))
    c = contacts.c
    stmt = select(contacts).where(c.session_id == session_id)
    if search:
        needle = search.lower()
        stmt = stmt.where(
            or_(
                func.lower(c.name).contains(needle, autoescape=True),
                func.lower(c.push_name).contains(needle, autoescape=True),
                func.lower(c.business_name).contains(needle, autoescape=True),
                c.phone.contains(needle, autoescape=True),
            )
        )
    if cursor:
        (after,) = decode_cursor(cursor, (str,))
        stmt = stmt.where(c.jid > after)
    rows = [dict(r._mapping) for r in conn.execute(stmt.order_by(c.jid).limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]["jid"]) if more else None)


def participants(conn: Connection, session_id: int, group_jid: str) -> list[dict[str, Any]]:
    p = group_participants.c
    rows = conn.execute(
        select(group_participants)
        .where(p.session_id == session_id, p.group_jid == group_jid)
        .order_by(p.is_super_admin.desc(), p.is_admin.desc(), p.participant_jid)
    )
    return [dict(r._mapping) for r in rows]
