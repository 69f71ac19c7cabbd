"""What a batch really changed, as events: state of its rows before and after the write.

A replayed message, a repeated edit or a contact list re-sent on every connect
changes nothing, and must not be announced again. The store's upserts are
idempotent but do not say what they changed, so the delivery hook reads the rows a
batch touches before the write (`capture`) and compares after it (`changed_events`).
Only the topics some endpoint wants are read, so the cost is paid by sessions with
webhooks alone; messages, the hot path, need only the "before" read.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from wasync.delivery.envelope import Event
from wasync.domain.batch import Batch
from wasync.domain.models import (
    Chat,
    ChatKind,
    Contact,
    Group,
    MessageKey,
    MessageKind,
    Participant,
)
from wasync.store.schema import chats, contacts, group_participants, groups
from wasync.sync.commit import status_of
from wasync.sync.publish import (
    chat_data,
    contact_data,
    forms,
    merged_data,
    merged_topics,
    message_data,
)

CHUNK = 300  # keys per IN (...) list: far below every driver's parameter limit
K = TypeVar("K")

ReactionKey = tuple[MessageKey, str]
MessageState = tuple[int | None, str | None, int | None, str | None]  # edit, text, revoke, by


@dataclass(slots=True)
class Before:
    """The rows of a batch's facts as they were before the write (wanted topics only)."""

    topics: frozenset[str]
    known: bool = True  # False: nothing was read (treat everything as changed)
    messages: set[MessageKey] = field(default_factory=set)
    message_states: dict[MessageKey, MessageState] = field(default_factory=dict)
    reactions: dict[ReactionKey, tuple[str | None, int]] = field(default_factory=dict)
    chats: dict[str, Chat] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)


def _chunks(items: Sequence[K]) -> Iterator[Sequence[K]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _edited_keys(batch: Batch, wanted: frozenset[str]) -> list[MessageKey]:
    keys: set[MessageKey] = set()
    if "message.edit" in wanted:
        keys.update(batch.edits)
    if "message.delete" in wanted:
        keys.update(batch.revokes)
    return sorted(keys)


def capture(conn: Connection, session_id: int, batch: Batch, wanted: frozenset[str]) -> Before:
    before = Before(wanted)
    if "message" in wanted and batch.messages:
        before.messages = existing_messages(conn, session_id, list(batch.messages))
    edited = _edited_keys(batch, wanted)
    if edited:
        before.message_states = message_states(conn, session_id, edited)
    if "reaction" in wanted and batch.reactions:
        before.reactions = reaction_states(conn, session_id, list(batch.reactions))
    if "chat" in wanted and batch.chats:
        before.chats = chat_records(conn, session_id, sorted(batch.chats))
    if "contact" in wanted and batch.contacts:
        before.contacts = contact_records(conn, session_id, sorted(batch.contacts))
    if "group" in wanted and batch.groups:
        before.groups = group_records(conn, session_id, sorted(batch.groups))
    return before


def changed_events(
    conn: Connection, session_id: int, session: str, batch: Batch, before: Before
) -> list[Event]:
    """The events of what the write changed (call after write_batch, same transaction)."""
    wanted = before.topics
    out: list[Event] = []
    for merged in batch.merges:  # merged in this transaction (store/merge.py)
        for topic in merged_topics(merged):
            if topic in wanted:
                data = merged_data(merged)
                out.append(Event.of_fact(session, topic, data, merged.lid, merged.phone_jid))
    if "message" in wanted:
        for key, m in batch.messages.items():
            if key not in before.messages:
                out.append(
                    Event.of_fact(session, "message", message_data(m, batch.phones), *_parts(key))
                )
    edited = _edited_keys(batch, wanted)
    after = message_states(conn, session_id, edited) if edited else {}
    if "message.edit" in wanted:
        out.extend(_edit_events(session, batch, before, after))
    if "message.delete" in wanted:
        out.extend(_revoke_events(session, batch, before, after))
    if "reaction" in wanted and batch.reactions:
        out.extend(_reaction_events(conn, session_id, session, batch, before))
    if "chat" in wanted and batch.chats:
        now = chat_records(conn, session_id, sorted(batch.chats))
        shape = functools.partial(chat_data, phones=batch.phones)
        out.extend(_record_events(session, "chat", before.chats, now, before.known, shape))
    if "contact" in wanted and batch.contacts:
        now_c = contact_records(conn, session_id, sorted(batch.contacts))
        out.extend(
            _record_events(session, "contact", before.contacts, now_c, before.known, contact_data)
        )
    if "group" in wanted and batch.groups:
        now_g = group_records(conn, session_id, sorted(batch.groups))
        out.extend(_record_events(session, "group", before.groups, now_g, before.known, group_data))
    if "session.status" in wanted:
        for event in batch.other:
            status = status_of(event)
            if status is not None:
                data = {"status": str(status[0]), "reason": status[1]}
                out.append(Event.occurrence(session, "session.status", data))
    return out


def _parts(key: MessageKey) -> tuple[str, str, str]:
    return key.chat_jid, key.sender_jid, key.message_id


def _key_data(key: MessageKey) -> dict[str, Any]:
    return {"chatJid": key.chat_jid, "senderJid": key.sender_jid, "messageId": key.message_id}


def _edit_events(
    session: str, batch: Batch, before: Before, after: dict[MessageKey, MessageState]
) -> Iterator[Event]:
    for key in batch.edits:
        now = after.get(key)
        if now is None or now[0] is None:
            continue
        old = before.message_states.get(key)
        if before.known and old is not None and old[:2] == now[:2]:
            continue  # a replayed or older edit: nothing changed
        data = {**_key_data(key), "text": now[1], "editedAt": now[0]}
        yield Event.of_fact(session, "message.edit", data, *_parts(key), now[0])


def _revoke_events(
    session: str, batch: Batch, before: Before, after: dict[MessageKey, MessageState]
) -> Iterator[Event]:
    for key in batch.revokes:
        now = after.get(key)
        if now is None or now[2] is None:
            continue
        old = before.message_states.get(key)
        if before.known and old is not None and old[2] is not None:
            continue  # deleted before: a revoke is sticky
        data = {**_key_data(key), "revokedAt": now[2], "revokedBy": now[3]}
        yield Event.of_fact(session, "message.delete", data, *_parts(key))


def _reaction_events(
    conn: Connection, session_id: int, session: str, batch: Batch, before: Before
) -> Iterator[Event]:
    after = reaction_states(conn, session_id, list(batch.reactions))
    for rkey in batch.reactions:
        now = after.get(rkey)
        if now is None or (before.known and before.reactions.get(rkey) == now):
            continue
        target, sender = rkey
        emoji, timestamp = now
        data = {
            "chatJid": target.chat_jid,
            "targetSenderJid": target.sender_jid,
            "targetMessageId": target.message_id,
            "senderJid": sender,
            "senderPhone": forms(sender, batch.phones)[0],
            "senderLid": forms(sender, batch.phones)[1],
            "emoji": emoji,
            "timestamp": timestamp,
        }
        yield Event.of_fact(session, "reaction", data, *_parts(target), sender, timestamp, emoji)


def _record_events(
    session: str,
    topic: str,
    old: dict[str, Any],
    new: dict[str, Any],
    known: bool,
    shape: Any,
) -> Iterator[Event]:
    # A record may come back to an earlier state: such events get fresh ids.
    for jid, record in new.items():
        if not known or old.get(jid) != record:
            yield Event.occurrence(session, topic, shape(record))


def group_data(g: Group) -> dict[str, Any]:
    # The shape sync/publish.py gives group events on the bus.
    return {
        "jid": g.jid,
        "name": g.name,
        "topic": g.topic,
        "participants": [
            {"jid": p.jid, "isAdmin": p.is_admin, "isSuperAdmin": p.is_super_admin}
            for p in g.participants
        ],
    }


# Reads of the rows a batch touches.


def _max_keys(conn: Connection, width: int) -> int:
    """Keys per statement: as many as the driver's parameter limit allows (fewer
    statements are much faster than small ones), at most 5,000."""
    limit = 65_535  # PostgreSQL's protocol limit
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if raw is not None else 999
    return max(1, min(5_000, (limit - 1) // width))


def _matching(
    conn: Connection, head: str, key_columns: str, session_id: int, keys: Sequence[tuple[str, ...]]
) -> list[Any]:
    """Rows of `head` (a SELECT … WHERE session_id = {p}…) whose key columns are in `keys`.

    Plain SQL with row values, `(a, b, c) IN (VALUES (…), …)`, on both databases: one
    index seek per key, without SQLAlchemy compiling thousands of bound tuples.
    """
    if not keys:
        return []
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    width = len(keys[0])
    row = "(" + ", ".join([mark] * width) + ")"
    out: list[Any] = []
    size = _max_keys(conn, width)
    for start in range(0, len(keys), size):
        chunk = keys[start : start + size]
        sql = (
            f"{head.format(p=mark)} AND ({key_columns}) IN (VALUES {', '.join([row] * len(chunk))})"
        )
        params = (session_id, *(part for key in chunk for part in key))
        out.extend(conn.exec_driver_sql(sql, params).all())
    return out


def existing_messages(
    conn: Connection, session_id: int, keys: Sequence[MessageKey]
) -> set[MessageKey]:
    """Keys already stored as real messages (a placeholder does not count)."""
    head = (
        "SELECT chat_jid, sender_jid, message_id FROM messages WHERE session_id = {p} "
        f"AND kind <> '{MessageKind.UNKNOWN.value}'"
    )
    rows = _matching(
        conn, head, "chat_jid, sender_jid, message_id", session_id, [_parts(k) for k in keys]
    )
    return {MessageKey(*r) for r in rows}


def message_states(
    conn: Connection, session_id: int, keys: Sequence[MessageKey]
) -> dict[MessageKey, MessageState]:
    head = (
        "SELECT chat_jid, sender_jid, message_id, edited_at, text, revoked_at, revoked_by "
        "FROM messages WHERE session_id = {p}"
    )
    rows = _matching(
        conn, head, "chat_jid, sender_jid, message_id", session_id, [_parts(k) for k in keys]
    )
    return {MessageKey(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in rows}


def reaction_states(
    conn: Connection, session_id: int, keys: Sequence[ReactionKey]
) -> dict[ReactionKey, tuple[str | None, int]]:
    head = (
        'SELECT chat_jid, target_sender_jid, target_message_id, sender_jid, emoji, "timestamp" '
        "FROM reactions WHERE session_id = {p}"
    )
    wanted = [(t.chat_jid, t.sender_jid, t.message_id, s) for t, s in keys]
    rows = _matching(
        conn, head, "chat_jid, target_sender_jid, target_message_id, sender_jid", session_id, wanted
    )
    return {(MessageKey(r[0], r[1], r[2]), r[3]): (r[4], int(r[5])) for r in rows}


def _by_jid(conn: Connection, table: Any, session_id: int, jids: Sequence[str]) -> Iterator[Any]:
    for chunk in _chunks(jids):
        yield from conn.execute(
            select(table).where(table.c.session_id == session_id, table.c.jid.in_(list(chunk)))
        )


def chat_records(conn: Connection, session_id: int, jids: Sequence[str]) -> dict[str, Chat]:
    return {
        r.jid: Chat(
            jid=r.jid,
            kind=ChatKind(r.kind),
            name=r.name,
            last_message_at=r.last_message_at,
            unread_count=r.unread_count,
            archived=bool(r.archived),
            pinned=bool(r.pinned),
            muted_until=r.muted_until,
        )
        for r in _by_jid(conn, chats, session_id, jids)
    }


def contact_records(conn: Connection, session_id: int, jids: Sequence[str]) -> dict[str, Contact]:
    return {
        r.jid: Contact(r.jid, r.name, r.push_name, r.business_name, r.phone, r.lid)
        for r in _by_jid(conn, contacts, session_id, jids)
    }


def group_records(conn: Connection, session_id: int, jids: Sequence[str]) -> dict[str, Group]:
    members: dict[str, list[Participant]] = {}
    p = group_participants.c
    for chunk in _chunks(jids):
        stmt = select(group_participants).where(
            p.session_id == session_id, p.group_jid.in_(list(chunk))
        )
        for r in conn.execute(stmt):
            members.setdefault(r.group_jid, []).append(
                Participant(
                    r.participant_jid,
                    bool(r.is_admin),
                    bool(r.is_super_admin),
                    r.phone,
                    r.lid,
                    r.display_name,
                )
            )
    return {
        r.jid: Group(
            r.jid,
            r.name,
            r.topic,
            r.owner_jid,
            r.created_at,
            tuple(sorted(members.get(r.jid, []), key=lambda x: x.jid)),
        )
        for r in _by_jid(conn, groups, session_id, jids)
    }


__all__ = ["Before", "capture", "changed_events", "group_data"]
