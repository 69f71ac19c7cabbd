"""Commit one `Batch` of engine facts in one transaction, idempotently.

Every statement is an upsert on WhatsApp's natural keys, so replaying any batch, in
any order, any number of times, leaves the same rows. The rules that make order not
matter:

- a message row is written once; only a placeholder row (kind 'unknown', made by an
  edit or revoke that overtook its message) is overwritten by the real message, and
  then the edited text survives;
- an edit applies only if newer than the one stored; a revoke is sticky;
- a reaction applies only if not older than the stored one (removal keeps the row);
- sync state and chat activity move only forwards (newest) or backwards (oldest).

Rows are written in key order: concurrent transactions (live batches, history pages)
then lock the rows they share in the same order, so PostgreSQL cannot deadlock them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, case, delete, literal_column, or_, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from wasync.domain.batch import Batch
from wasync.domain.jid import chat_kind_of
from wasync.domain.models import Chat, Contact, Message, MessageKind
from wasync.store import rows as R
from wasync.store.schema import (
    chats,
    contacts,
    group_participants,
    groups,
    messages,
    reactions,
    sync_state,
)
from wasync.store.upsert import upsert

_CONTACT_FIELDS = ("name", "push_name", "business_name", "phone", "lid")
_MESSAGE_FIELDS = (
    "from_me",
    "timestamp",
    "kind",
    "quoted_id",
    "push_name",
    "media_mimetype",
    "media_size",
    "media_sha256",
    "media_enc_sha256",
    "media_key",
    "media_direct_path",
    "media_url",
    "media_filename",
)


@dataclass(slots=True)
class WriteResult:
    messages: int = 0  # distinct message keys written (new or already present)
    chats_touched: set[str] = field(default_factory=set)
    senders: set[str] = field(default_factory=set)


def write_batch(conn: Connection, session_id: int, batch: Batch, now: int) -> WriteResult:
    result = WriteResult()
    msgs = list(batch.messages.values())
    _write_contacts(conn, session_id, batch, msgs, now, result)
    _write_chats(conn, session_id, batch, msgs, now, result)
    _write_groups(conn, session_id, batch, now)
    if msgs:
        _insert_messages(conn, session_id, msgs)
        _advance_sync_state(conn, session_id, msgs, now)
        result.messages = len(msgs)
    _write_edits(conn, session_id, batch)
    _write_revokes(conn, session_id, batch)
    _write_reactions(conn, session_id, batch)
    for jid in sorted(batch.complete_chats):
        mark_fully_synced(conn, session_id, jid, now)
    return result


def _message_upsert(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """The message upsert as SQL text for this dialect, built once by SQLAlchemy.

    Messages are the one hot statement: executing the compiled text with plain tuples
    skips SQLAlchemy's per-row parameter processing, which otherwise costs more than
    the database work itself. Returns the SQL and, for positional drivers, the
    parameter order.
    """
    cached = _UPSERT_SQL.get(dialect.name)
    if cached is not None:
        return cached
    make = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    ins = make(messages).values({name: bindparam(name) for name in R.MESSAGE_COLUMNS})
    stmt = ins.on_conflict_do_update(
        index_elements=["session_id", "chat_jid", "sender_jid", "message_id"],
        set_=_replace_placeholder(ins.excluded),
        # A literal, so the compiled text needs no parameters beyond the row's.
        where=messages.c.kind == literal_column(f"'{MessageKind.UNKNOWN.value}'"),
    )
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    _UPSERT_SQL[dialect.name] = (str(compiled), order)
    return _UPSERT_SQL[dialect.name]


_UPSERT_SQL: dict[str, tuple[str, tuple[str, ...] | None]] = {}


def _insert_messages(conn: Connection, session_id: int, msgs: list[Message]) -> None:
    sql, order = _message_upsert(conn.dialect)
    # Tuples start with the message's key: sorting them puts the rows in key order.
    values = sorted(R.message_values(session_id, m) for m in msgs)
    if order is None:
        params: list[Any] = [dict(zip(R.MESSAGE_COLUMNS, v, strict=True)) for v in values]
    elif order == R.MESSAGE_COLUMNS:
        params = values
    else:  # pragma: no cover - only if SQLAlchemy ever reorders VALUES
        index = [R.MESSAGE_COLUMNS.index(name) for name in order]
        params = [tuple(v[i] for i in index) for v in values]
    conn.exec_driver_sql(sql, params)


def _replace_placeholder(x: Any) -> dict[str, Any]:
    update: dict[str, Any] = {name: x[name] for name in _MESSAGE_FIELDS}
    # An edit that overtook its message already holds the newest text.
    update["text"] = case((messages.c.edited_at.is_(None), x.text), else_=messages.c.text)
    return update


def _is_person(jid: str) -> bool:
    return jid.endswith(("@s.whatsapp.net", "@lid"))


def _write_contacts(
    conn: Connection,
    session_id: int,
    batch: Batch,
    msgs: list[Message],
    now: int,
    result: WriteResult,
) -> None:
    found: dict[str, Contact] = dict(batch.contacts)
    # Senders are contacts too (a first message from a stranger is a new lead).
    for m in msgs:
        sender = m.key.sender_jid
        if m.from_me or not _is_person(sender):
            continue
        result.senders.add(sender)
        old = found.get(sender)
        if old is None:
            found[sender] = Contact(jid=sender, push_name=m.push_name)
        elif m.push_name and not old.push_name:
            found[sender] = Contact(
                jid=sender,
                name=old.name,
                push_name=m.push_name,
                business_name=old.business_name,
                phone=old.phone,
                lid=old.lid,
            )
    if not found:
        return
    upsert(
        conn,
        contacts,
        [R.contact_row(session_id, found[jid], now) for jid in sorted(found)],
        keys=("session_id", "jid"),
        # A partial record must not erase what a fuller one said before.
        update=lambda x: {
            **{f: _coalesce(x[f], contacts.c[f]) for f in _CONTACT_FIELDS},
            "updated_at": x.updated_at,
        },
    )


def _coalesce(new: Any, old: Any) -> Any:
    return case((new.is_(None), old), else_=new)


def _later(new: Any, old: Any) -> Any:
    return case((or_(old.is_(None), new > old), new), else_=old)


def _write_chats(
    conn: Connection,
    session_id: int,
    batch: Batch,
    msgs: list[Message],
    now: int,
    result: WriteResult,
) -> None:
    found: dict[str, Chat] = dict(batch.chats)
    for g in batch.groups.values():
        found.setdefault(g.jid, R.group_chat(g))
    activity: dict[str, int] = {}
    for m in msgs:
        jid = m.key.chat_jid
        if m.timestamp > activity.get(jid, -1):
            activity[jid] = m.timestamp
    rows = []
    for jid, ts in activity.items():
        chat = found.pop(jid, None)
        row = (
            R.chat_row(session_id, chat, now)
            if chat is not None
            else R.chat_row(session_id, Chat(jid=jid, kind=chat_kind_of(jid)), now)
        )
        if row["last_message_at"] is None or ts > row["last_message_at"]:
            row["last_message_at"] = ts
        rows.append(row)
    rows.extend(R.chat_row(session_id, c, now) for c in found.values())
    rows.sort(key=lambda row: str(row["jid"]))
    result.chats_touched.update(activity)
    if not rows:
        return
    # Three kinds of row, three update rules: a full chat record replaces the chat's
    # metadata; a group record only names it (it knows nothing of unread, archived,
    # pinned or muted, so it must not reset them); activity alone only moves
    # last_message_at forward.
    keys = ("session_id", "jid")
    by_kind: dict[str, list[dict[str, Any]]] = {"chat": [], "group": [], "activity": []}
    for r in rows:
        jid = r["jid"]
        kind = "chat" if jid in batch.chats else "group" if jid in batch.groups else "activity"
        by_kind[kind].append(r)
    upsert(
        conn,
        chats,
        by_kind["activity"],
        keys=keys,
        update=lambda x: {"last_message_at": _later(x.last_message_at, chats.c.last_message_at)},
    )
    upsert(
        conn,
        chats,
        by_kind["group"],
        keys=keys,
        update=lambda x: {
            "kind": x.kind,
            "name": _coalesce(x.name, chats.c.name),
            "last_message_at": _later(x.last_message_at, chats.c.last_message_at),
            "updated_at": x.updated_at,
        },
    )
    upsert(
        conn,
        chats,
        by_kind["chat"],
        keys=keys,
        update=lambda x: {
            "kind": x.kind,
            "name": _coalesce(x.name, chats.c.name),
            "last_message_at": _later(x.last_message_at, chats.c.last_message_at),
            "unread_count": x.unread_count,
            "archived": x.archived,
            "pinned": x.pinned,
            "muted_until": x.muted_until,
            "updated_at": x.updated_at,
        },
    )


def _write_groups(conn: Connection, session_id: int, batch: Batch, now: int) -> None:
    if not batch.groups:
        return
    upsert(
        conn,
        groups,
        [R.group_row(session_id, batch.groups[jid], now) for jid in sorted(batch.groups)],
        keys=("session_id", "jid"),
        update=lambda x: {
            "name": _coalesce(x.name, groups.c.name),
            "topic": x.topic,
            "owner_jid": _coalesce(x.owner_jid, groups.c.owner_jid),
            "created_at": _coalesce(x.created_at, groups.c.created_at),
            "updated_at": x.updated_at,
        },
    )
    # A group record carries its whole membership: replace it.
    conn.execute(
        delete(group_participants).where(
            group_participants.c.session_id == session_id,
            group_participants.c.group_jid.in_(list(batch.groups)),
        )
    )
    rows = [r for g in batch.groups.values() for r in R.participant_rows(session_id, g)]
    rows.sort(key=lambda row: (row["group_jid"], row["participant_jid"]))
    upsert(conn, group_participants, rows, keys=("session_id", "group_jid", "participant_jid"))


def _advance_sync_state(conn: Connection, session_id: int, msgs: list[Message], now: int) -> None:
    newest: dict[str, Message] = {}
    oldest: dict[str, Message] = {}
    for m in msgs:
        jid = m.key.chat_jid
        n = newest.get(jid)
        if n is None or (m.timestamp, m.key.message_id) > (n.timestamp, n.key.message_id):
            newest[jid] = m
        o = oldest.get(jid)
        if o is None or (m.timestamp, m.key.message_id) < (o.timestamp, o.key.message_id):
            oldest[jid] = m
    rows = [
        {
            "session_id": session_id,
            "chat_jid": jid,
            "newest_message_id": n.key.message_id,
            "newest_sender_jid": n.key.sender_jid,
            "newest_timestamp": n.timestamp,
            "oldest_message_id": oldest[jid].key.message_id,
            "oldest_sender_jid": oldest[jid].key.sender_jid,
            "oldest_timestamp": oldest[jid].timestamp,
            "last_synced_at": now,
        }
        for jid, n in sorted(newest.items())
    ]
    s = sync_state.c

    def update(x: Any) -> dict[str, Any]:
        newer = or_(
            s.newest_timestamp.is_(None),
            tuple_(x.newest_timestamp, x.newest_message_id)
            > tuple_(s.newest_timestamp, s.newest_message_id),
        )
        older = or_(
            s.oldest_timestamp.is_(None),
            tuple_(x.oldest_timestamp, x.oldest_message_id)
            < tuple_(s.oldest_timestamp, s.oldest_message_id),
        )
        out: dict[str, Any] = {"last_synced_at": x.last_synced_at}
        for f in ("newest_message_id", "newest_sender_jid", "newest_timestamp"):
            out[f] = case((newer, x[f]), else_=s[f])
        for f in ("oldest_message_id", "oldest_sender_jid", "oldest_timestamp"):
            out[f] = case((older, x[f]), else_=s[f])
        return out

    upsert(conn, sync_state, rows, keys=("session_id", "chat_jid"), update=update)


def _write_edits(conn: Connection, session_id: int, batch: Batch) -> None:
    if not batch.edits:
        return
    rows = []
    for _, e in sorted(batch.edits.items()):
        row = R.placeholder_row(session_id, e.key, e.edited_at)
        row["text"] = e.text
        row["edited_at"] = e.edited_at
        rows.append(row)
    m = messages.c
    upsert(
        conn,
        messages,
        rows,
        keys=("session_id", "chat_jid", "sender_jid", "message_id"),
        update=lambda x: {"text": x.text, "edited_at": x.edited_at},
        where=lambda x: or_(m.edited_at.is_(None), m.edited_at < x.edited_at),
    )


def _write_revokes(conn: Connection, session_id: int, batch: Batch) -> None:
    if not batch.revokes:
        return
    rows = []
    for _, r in sorted(batch.revokes.items()):
        row = R.placeholder_row(session_id, r.key, r.revoked_at)
        row["revoked_at"] = r.revoked_at
        row["revoked_by"] = r.revoked_by
        rows.append(row)
    upsert(
        conn,
        messages,
        rows,
        keys=("session_id", "chat_jid", "sender_jid", "message_id"),
        update=("revoked_at", "revoked_by"),
        where=lambda x: messages.c.revoked_at.is_(None),
    )


def _write_reactions(conn: Connection, session_id: int, batch: Batch) -> None:
    if not batch.reactions:
        return
    rows = [
        {
            "session_id": session_id,
            "chat_jid": r.target.chat_jid,
            "target_sender_jid": r.target.sender_jid,
            "target_message_id": r.target.message_id,
            "sender_jid": r.sender_jid,
            "emoji": r.emoji or None,
            "timestamp": r.timestamp,
        }
        for _, r in sorted(batch.reactions.items())
    ]
    upsert(
        conn,
        reactions,
        rows,
        keys=("session_id", "chat_jid", "target_sender_jid", "target_message_id", "sender_jid"),
        update=("emoji", "timestamp"),
        where=lambda x: reactions.c.timestamp <= x.timestamp,
    )


def mark_chat_error(
    conn: Connection, session_id: int, chat_jid: str, error: str | None, now: int
) -> None:
    """Record (or clear, with None) the last sync error of a chat."""
    upsert(
        conn,
        sync_state,
        [
            {
                "session_id": session_id,
                "chat_jid": chat_jid,
                "last_error": error,
                "last_error_at": now if error else None,
            }
        ],
        keys=("session_id", "chat_jid"),
        update=("last_error", "last_error_at"),
    )


def mark_fully_synced(conn: Connection, session_id: int, chat_jid: str, now: int) -> None:
    upsert(
        conn,
        sync_state,
        [
            {
                "session_id": session_id,
                "chat_jid": chat_jid,
                "fully_synced": True,
                "last_synced_at": now,
            }
        ],
        keys=("session_id", "chat_jid"),
        update=("fully_synced", "last_synced_at"),
    )


__all__ = ["WriteResult", "mark_chat_error", "mark_fully_synced", "write_batch"]
