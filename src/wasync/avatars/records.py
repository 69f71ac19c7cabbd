"""The avatar columns of contacts and chats: read what is known, write what was learnt.

A JID's picture lives on its contact row, its chat row, or both (a person we talk
to has both); every write updates whichever exist, so the two never disagree.
`profile_picture` is the served path, or the literal 'none' when WhatsApp has no
picture or will not show it; the timestamp says when WhatsApp was last asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, or_, select, union_all, update

from wasync.domain.jid import parse_jid
from wasync.jobs import queries as queue
from wasync.store import identities
from wasync.store.schema import chats, contacts, sessions
from wasync.store.upsert import upsert

NONE: str = "none"
_CHUNK = 500  # JIDs per IN (...) list: well under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class StoredAvatar:
    picture: str | None  # served path, 'none', or None when never checked
    picture_id: str | None
    timestamp: int | None
    phone: str | None
    in_contacts: bool
    in_chats: bool


def chunked(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def stored_avatar(conn: Connection, session_id: int, jid: str) -> StoredAvatar:
    c, ch = contacts.c, chats.c
    contact = conn.execute(
        select(c.profile_picture, c.profile_picture_id, c.profile_picture_timestamp, c.phone).where(
            c.session_id == session_id, c.jid == jid
        )
    ).one_or_none()
    chat = conn.execute(
        select(ch.profile_picture, ch.profile_picture_id, ch.profile_picture_timestamp).where(
            ch.session_id == session_id, ch.jid == jid
        )
    ).one_or_none()
    # The most recently checked row speaks for the JID.
    rows = sorted(
        (r for r in (contact, chat) if r is not None),
        key=lambda r: r.profile_picture_timestamp or -1,
        reverse=True,
    )
    best = rows[0] if rows else None
    return StoredAvatar(
        picture=best.profile_picture if best is not None else None,
        picture_id=best.profile_picture_id if best is not None else None,
        timestamp=best.profile_picture_timestamp if best is not None else None,
        phone=contact.phone if contact is not None else None,
        in_contacts=contact is not None,
        in_chats=chat is not None,
    )


def save_avatar(
    conn: Connection,
    session_id: int,
    jid: str,
    *,
    picture: str,
    picture_id: str | None,
    now: int,
) -> int:
    """Set the avatar columns of the JID's rows; returns how many rows exist.

    A person with no row yet (a picture asked for by hand) gets a contact row, so the
    answer is kept; a group without a chat row stays without one. A person asked for
    by number whose rows moved to their LID meanwhile is saved there.
    """
    jid = identities.canonical_to_write(conn, session_id, jid)
    values = {
        "profile_picture": picture,
        "profile_picture_id": picture_id,
        "profile_picture_timestamp": now,
    }
    touched = 0
    for table in (contacts, chats):
        result = conn.execute(
            update(table)
            .where(table.c.session_id == session_id, table.c.jid == jid)
            .values(**values)
        )
        touched += result.rowcount
    if touched == 0 and not parse_jid(jid).is_group:
        upsert(
            conn,
            contacts,
            [
                {
                    "session_id": session_id,
                    "jid": jid,
                    "phone": parse_jid(jid).phone,
                    "updated_at": now,
                    **values,
                }
            ],
            keys=("session_id", "jid"),
            update=tuple(values),
        )
        touched = 1
    return touched


def paused_until(conn: Connection, session_id: int) -> float | None:
    """Until when a 429 pauses the session's picture requests (Unix time), if ever."""
    value = conn.execute(
        select(sessions.c.avatar_paused_until).where(sessions.c.id == session_id)
    ).scalar_one_or_none()
    return float(value) if value is not None else None


def save_pause(conn: Connection, session_id: int, until: float) -> None:
    """Remember a 429 pause (never shortening a longer one already stored)."""
    column = sessions.c.avatar_paused_until
    conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, or_(column.is_(None), column < until))
        .values(avatar_paused_until=until)
    )


def unchecked_among(conn: Connection, session_id: int, jids: Iterable[str]) -> set[str]:
    """Those of `jids` whose rows were never checked (or that have no row at all)."""
    wanted = sorted(set(jids))
    checked: set[str] = set()
    for part in chunked(wanted):
        for table in (contacts, chats):
            t = table.c
            checked.update(
                conn.execute(
                    select(t.jid).where(
                        t.session_id == session_id,
                        t.jid.in_(part),
                        t.profile_picture_timestamp.is_not(None),
                    )
                ).scalars()
            )
    return set(wanted) - checked


def _avatar_rows(session_id: int) -> Any:
    """Every contact and chat row of a session as (jid, picture, timestamp)."""
    parts = [
        select(
            t.c.jid.label("jid"),
            t.c.profile_picture.label("picture"),
            t.c.profile_picture_timestamp.label("ts"),
        ).where(t.c.session_id == session_id)
        for t in (contacts, chats)
    ]
    return union_all(*parts).subquery("avatar_rows")


def all_jids(conn: Connection, session_id: int) -> list[str]:
    rows = _avatar_rows(session_id)
    return list(conn.execute(select(rows.c.jid).distinct().order_by(rows.c.jid)).scalars())


def never_checked(conn: Connection, session_id: int) -> list[str]:
    rows = _avatar_rows(session_id)
    stmt = select(rows.c.jid).group_by(rows.c.jid).having(func.max(rows.c.ts).is_(None))
    return list(conn.execute(stmt.order_by(rows.c.jid)).scalars())


def stale_jids(
    conn: Connection,
    session_id: int,
    *,
    now: float,
    ttl: float,
    none_ttl: float,
    limit: int,
    failed_kind: str | None = None,
) -> list[str]:
    """JIDs whose last check is older than its TTL, oldest first.

    With `failed_kind`, a JID whose job of that kind failed less than `ttl` ago is
    left out: a failure writes no timestamp on the rows, and without this the JID
    would come back at every refresh, forever, and crowd out the healthy ones.
    """
    rows = _avatar_rows(session_id)
    is_none = rows.c.picture == literal(NONE)
    stale = and_(
        rows.c.ts.is_not(None),
        or_(
            and_(is_none, rows.c.ts < now - none_ttl),
            and_(~is_none, rows.c.ts < now - ttl),
        ),
    )
    if failed_kind is not None:
        recently_failed = queue.failed_recently(failed_kind, session_id, rows.c.jid, now - ttl)
        stale = and_(stale, ~recently_failed)
    newest = func.max(rows.c.ts)
    stmt = (
        select(rows.c.jid, newest.label("ts"))
        .where(stale)
        .group_by(rows.c.jid)
        .order_by(newest, rows.c.jid)
        .limit(limit)
    )
    return [r.jid for r in conn.execute(stmt)]


def picture_counts(conn: Connection, session_id: int | None) -> dict[str, int]:
    """Distinct JIDs with a stored picture, with 'none', and never checked."""
    parts = []
    for t in (contacts, chats):
        part = select(
            t.c.session_id.label("sid"),
            t.c.jid.label("jid"),
            t.c.profile_picture.label("picture"),
        )
        if session_id is not None:
            part = part.where(t.c.session_id == session_id)
        parts.append(part)
    rows = union_all(*parts).subquery("avatar_rows")
    per_jid = (
        select(rows.c.sid, rows.c.jid, func.max(rows.c.picture).label("picture"))
        .group_by(rows.c.sid, rows.c.jid)
        .subquery("per_jid")
    )
    state = per_jid.c.picture
    kind = case((state.is_(None), "unchecked"), (state == literal(NONE), "none"), else_="stored")
    out = {"stored": 0, "none": 0, "unchecked": 0}
    for key, n in conn.execute(select(kind, func.count()).select_from(per_jid).group_by(kind)):
        out[str(key)] = int(n)
    return out
