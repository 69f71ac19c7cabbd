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

On PostgreSQL rows are written in key order: concurrent transactions (live batches,
history pages) then lock the rows they share in the same order, and cannot deadlock.
(SQLite runs one write transaction at a time; there the big message batch is not
sorted.)

Several sessions' batches can be written in one call (`write_batches`): the process's
one live writer commits every session's events together, and each statement runs
once, with every session's rows, whatever the number of sessions. The statements are
compiled once (store/statements.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, case, literal_column, or_, tuple_

from wasync.domain.batch import Batch
from wasync.domain.jid import chat_kind_of
from wasync.domain.models import Chat, Contact, Message, MessageKind
from wasync.store import rows as R
from wasync.store.identities import canonical_to_write, prepare
from wasync.store.schema import (
    chats,
    contacts,
    group_participants,
    groups,
    messages,
    reactions,
    sync_state,
)
from wasync.store.statements import Upsert

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
    # Of those, the rows the database really inserted (or filled in from a placeholder
    # an edit or revoke had made), from the upsert's row count; None when several
    # sessions' messages shared the statement and the count cannot be split.
    new_messages: int | None = 0
    chats_touched: set[str] = field(default_factory=set)
    senders: set[str] = field(default_factory=set)


def _coalesce(new: Any, old: Any) -> Any:
    return case((new.is_(None), old), else_=new)


def _later(new: Any, old: Any) -> Any:
    return case((or_(old.is_(None), new > old), new), else_=old)


def _replace_placeholder(x: Any) -> dict[str, Any]:
    update: dict[str, Any] = {name: x[name] for name in _MESSAGE_FIELDS}
    # An edit that overtook its message already holds the newest text.
    update["text"] = case((messages.c.edited_at.is_(None), x.text), else_=messages.c.text)
    return update


def _sync_state_update(x: Any) -> dict[str, Any]:
    s = sync_state.c
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


_MESSAGE_KEY = ("session_id", "chat_jid", "sender_jid", "message_id")
_CHAT_COLUMNS = (
    "session_id", "jid", "kind", "name", "last_message_at", "unread_count", "archived",
    "pinned", "muted_until", "updated_at",
)  # fmt: skip
_SYNC_COLUMNS = (
    "session_id", "chat_jid", "newest_message_id", "newest_sender_jid", "newest_timestamp",
    "oldest_message_id", "oldest_sender_jid", "oldest_timestamp", "last_synced_at",
)  # fmt: skip
_PLACEHOLDER = (*_MESSAGE_KEY, "from_me", "timestamp", "kind")

# The statements of a batch, built once (compiled on first use per dialect).
MESSAGES = Upsert(
    messages,
    R.MESSAGE_COLUMNS,
    keys=_MESSAGE_KEY,
    update=_replace_placeholder,
    # A literal, so the compiled text needs no parameters beyond the row's.
    where=lambda x: messages.c.kind == literal_column(f"'{MessageKind.UNKNOWN.value}'"),
)
CONTACTS = Upsert(
    contacts,
    ("session_id", "jid", *_CONTACT_FIELDS, "updated_at"),
    keys=("session_id", "jid"),
    # A partial record must not erase what a fuller one said before.
    update=lambda x: {
        **{f: _coalesce(x[f], contacts.c[f]) for f in _CONTACT_FIELDS},
        "updated_at": x.updated_at,
    },
)
# Three kinds of chat row, three update rules: a full chat record replaces the chat's
# metadata; a group record only names it (it knows nothing of unread, archived,
# pinned or muted, so it must not reset them); activity alone only moves
# last_message_at forward.
CHAT_ACTIVITY = Upsert(
    chats,
    _CHAT_COLUMNS,
    keys=("session_id", "jid"),
    update=lambda x: {"last_message_at": _later(x.last_message_at, chats.c.last_message_at)},
)
CHAT_OF_GROUP = Upsert(
    chats,
    _CHAT_COLUMNS,
    keys=("session_id", "jid"),
    update=lambda x: {
        "kind": x.kind,
        "name": _coalesce(x.name, chats.c.name),
        "last_message_at": _later(x.last_message_at, chats.c.last_message_at),
        "updated_at": x.updated_at,
    },
)
CHAT_RECORD = Upsert(
    chats,
    _CHAT_COLUMNS,
    keys=("session_id", "jid"),
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
GROUPS = Upsert(
    groups,
    ("session_id", "jid", "name", "topic", "owner_jid", "created_at", "updated_at"),
    keys=("session_id", "jid"),
    update=lambda x: {
        "name": _coalesce(x.name, groups.c.name),
        "topic": x.topic,
        "owner_jid": _coalesce(x.owner_jid, groups.c.owner_jid),
        "created_at": _coalesce(x.created_at, groups.c.created_at),
        "updated_at": x.updated_at,
    },
)
PARTICIPANTS = Upsert(
    group_participants,
    (
        "session_id",
        "group_jid",
        "participant_jid",
        "is_admin",
        "is_super_admin",
        "phone",
        "lid",
        "display_name",
    ),
    keys=("session_id", "group_jid", "participant_jid"),
)
_DELETE_PARTICIPANTS = "DELETE FROM group_participants WHERE session_id = {p} AND group_jid = {p}"
SYNC_STATE = Upsert(
    sync_state, _SYNC_COLUMNS, keys=("session_id", "chat_jid"), update=_sync_state_update
)
EDITS = Upsert(
    messages,
    (*_PLACEHOLDER, "text", "edited_at"),
    keys=_MESSAGE_KEY,
    update=lambda x: {"text": x.text, "edited_at": x.edited_at},
    where=lambda x: or_(messages.c.edited_at.is_(None), messages.c.edited_at < x.edited_at),
)
REVOKES = Upsert(
    messages,
    (*_PLACEHOLDER, "revoked_at", "revoked_by"),
    keys=_MESSAGE_KEY,
    update=("revoked_at", "revoked_by"),
    where=lambda x: messages.c.revoked_at.is_(None),
)
REACTIONS = Upsert(
    reactions,
    (
        "session_id",
        "chat_jid",
        "target_sender_jid",
        "target_message_id",
        "sender_jid",
        "emoji",
        "timestamp",
    ),
    keys=("session_id", "chat_jid", "target_sender_jid", "target_message_id", "sender_jid"),
    update=("emoji", "timestamp"),
    where=lambda x: reactions.c.timestamp <= x.timestamp,
)
CHAT_ERROR = Upsert(
    sync_state,
    ("session_id", "chat_jid", "last_error", "last_error_at"),
    keys=("session_id", "chat_jid"),
    update=("last_error", "last_error_at"),
)
FULLY_SYNCED = Upsert(
    sync_state,
    ("session_id", "chat_jid", "fully_synced", "last_synced_at"),
    keys=("session_id", "chat_jid"),
    update=("fully_synced", "last_synced_at"),
)


def write_batch(conn: Connection, session_id: int, batch: Batch, now: int) -> WriteResult:
    return write_batches(conn, [(session_id, batch)], now)[0]


def write_batches(
    conn: Connection, items: Sequence[tuple[int, Batch]], now: int
) -> list[WriteResult]:
    """Write several sessions' batches; each statement runs once for all of them."""
    results = [WriteResult() for _ in items]
    contact_rows: list[tuple[Any, ...]] = []
    chat_rows: dict[str, list[tuple[Any, ...]]] = {"chat": [], "group": [], "activity": []}
    group_rows: list[tuple[Any, ...]] = []
    gone_members: list[tuple[int, str]] = []
    member_rows: list[tuple[Any, ...]] = []
    message_rows: list[tuple[Any, ...]] = []
    sync_rows: list[tuple[Any, ...]] = []
    edit_rows: list[tuple[Any, ...]] = []
    revoke_rows: list[tuple[Any, ...]] = []
    reaction_rows: list[tuple[Any, ...]] = []
    complete_rows: list[tuple[Any, ...]] = []
    for sid, batch in items:
        # A safety net for callers that did not prepare the batch (a no-op otherwise).
        prepare(conn, sid, batch, now)
    for (sid, batch), result in zip(items, results, strict=True):
        msgs = list(batch.messages.values())
        contact_rows += _contact_rows(sid, batch, msgs, now, result)
        for kind, rows in _chat_rows(sid, batch, msgs, now, result).items():
            chat_rows[kind] += rows
        for jid in sorted(batch.groups):
            g = batch.groups[jid]
            group_rows.append((sid, g.jid, g.name, g.topic, g.owner_jid, g.created_at, now))
            gone_members.append((sid, g.jid))
            member_rows += [
                (sid, g.jid, p.jid, p.is_admin, p.is_super_admin, p.phone, p.lid, p.display_name)
                for p in g.participants
            ]
        if msgs:
            message_rows += [R.message_values(sid, m) for m in msgs]
            sync_rows += _sync_rows(sid, msgs, now)
            result.messages = len(msgs)
        for _, e in sorted(batch.edits.items()):
            k = e.key
            edit_rows.append(
                (sid, k.chat_jid, k.sender_jid, k.message_id, False, e.edited_at,
                 MessageKind.UNKNOWN.value, e.text, e.edited_at)
            )  # fmt: skip
        for _, rv in sorted(batch.revokes.items()):
            k = rv.key
            revoke_rows.append(
                (sid, k.chat_jid, k.sender_jid, k.message_id, False, rv.revoked_at,
                 MessageKind.UNKNOWN.value, rv.revoked_at, rv.revoked_by)
            )  # fmt: skip
        for _, rx in sorted(batch.reactions.items()):
            t = rx.target
            reaction_rows.append(
                (sid, t.chat_jid, t.sender_jid, t.message_id, rx.sender_jid, rx.emoji or None,
                 rx.timestamp)
            )  # fmt: skip
        complete_rows += [(sid, jid, True, now) for jid in sorted(batch.complete_chats)]
    # Key order across sessions too: rows are tuples that start with their key.
    CONTACTS.run(conn, sorted(contact_rows))
    for kind, upsert in (
        ("activity", CHAT_ACTIVITY),
        ("group", CHAT_OF_GROUP),
        ("chat", CHAT_RECORD),
    ):
        upsert.run(conn, sorted(chat_rows[kind], key=_key2))
    if group_rows:
        GROUPS.run(conn, sorted(group_rows, key=_key2))
        # A group record carries its whole membership: replace it.
        conn.exec_driver_sql(_delete_participants(conn), sorted(gone_members))
        PARTICIPANTS.run(conn, sorted(member_rows, key=_key3))
    if message_rows:
        # Key order matters where writers run at once (PostgreSQL); SQLite has one
        # writer, and sorting a big batch costs more than it saves (bench/ingest.py).
        if conn.dialect.name == "postgresql":
            message_rows.sort()
        inserted = MESSAGES.run(conn, message_rows)
        with_messages = [r for (_, b), r in zip(items, results, strict=True) if b.messages]
        for result in with_messages:
            result.new_messages = inserted if len(with_messages) == 1 else None
        SYNC_STATE.run(conn, sorted(sync_rows, key=_key2))
    EDITS.run(conn, edit_rows)
    REVOKES.run(conn, revoke_rows)
    REACTIONS.run(conn, reaction_rows)
    FULLY_SYNCED.run(conn, complete_rows)
    return results


def _key2(row: tuple[Any, ...]) -> tuple[Any, Any]:
    return row[0], row[1]


def _key3(row: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    return row[0], row[1], row[2]


def _delete_participants(conn: Connection) -> str:
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    return _DELETE_PARTICIPANTS.format(p=mark)


_PERSON = ("@s.whatsapp.net", "@lid")


def _contact_rows(
    session_id: int, batch: Batch, msgs: list[Message], now: int, result: WriteResult
) -> list[tuple[Any, ...]]:
    found: dict[str, Contact] = dict(batch.contacts)
    senders = result.senders
    # Senders are contacts too (a first message from a stranger is a new lead).
    for m in msgs:
        if m.from_me:
            continue
        sender = m.key.sender_jid
        if sender in senders:
            if not m.push_name or found[sender].push_name:
                continue  # known, and nothing new to say about it
        elif not sender.endswith(_PERSON):
            continue
        senders.add(sender)
        old = found.get(sender)
        if old is None:
            # Both forms everywhere: a sender's own address says its number or its LID.
            found[sender] = Contact(
                jid=sender,
                push_name=m.push_name,
                phone=sender.split("@", 1)[0] if sender.endswith(_PERSON[0]) else None,
                lid=sender if sender.endswith(_PERSON[1]) else None,
            )
        elif m.push_name and not old.push_name:
            found[sender] = Contact(
                jid=sender,
                name=old.name,
                push_name=m.push_name,
                business_name=old.business_name,
                phone=old.phone,
                lid=old.lid,
            )
    return [
        (session_id, c.jid, c.name, c.push_name, c.business_name, c.phone, c.lid, now)
        for c in found.values()
    ]


def _chat_values(session_id: int, c: Chat, now: int) -> list[Any]:
    return [
        session_id, c.jid, c.kind.value, c.name, c.last_message_at, c.unread_count,
        c.archived, c.pinned, c.muted_until, now,
    ]  # fmt: skip


def _chat_rows(
    session_id: int, batch: Batch, msgs: list[Message], now: int, result: WriteResult
) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, Chat] = dict(batch.chats)
    for g in batch.groups.values():
        found.setdefault(g.jid, R.group_chat(g))
    activity: dict[str, int] = {}
    for m in msgs:
        jid = m.key.chat_jid
        if m.timestamp > activity.get(jid, -1):
            activity[jid] = m.timestamp
    out: dict[str, list[tuple[Any, ...]]] = {"chat": [], "group": [], "activity": []}

    def kind_of(jid: str) -> str:
        return "chat" if jid in batch.chats else "group" if jid in batch.groups else "activity"

    for jid, ts in activity.items():
        chat = found.pop(jid, None) or Chat(jid=jid, kind=chat_kind_of(jid))
        row = _chat_values(session_id, chat, now)
        if row[4] is None or ts > row[4]:
            row[4] = ts
        out[kind_of(jid)].append(tuple(row))
    for c in found.values():
        out[kind_of(c.jid)].append(tuple(_chat_values(session_id, c, now)))
    result.chats_touched.update(activity)
    return out


def _sync_rows(session_id: int, msgs: list[Message], now: int) -> list[tuple[Any, ...]]:
    # (timestamp, message id, sender) of each chat's newest and oldest message: plain
    # tuples compare in C, one pass, no attribute lookups repeated per comparison.
    newest: dict[str, tuple[int, str, str]] = {}
    oldest: dict[str, tuple[int, str, str]] = {}
    for m in msgs:
        key = m.key
        jid = key.chat_jid
        mark = (m.timestamp, key.message_id, key.sender_jid)
        n = newest.get(jid)
        if n is None:
            newest[jid] = oldest[jid] = mark
        elif mark[:2] > n[:2]:
            newest[jid] = mark
        elif mark[:2] < oldest[jid][:2]:
            oldest[jid] = mark
    return [
        (session_id, jid, n[1], n[2], n[0], o[1], o[2], o[0], now)
        for jid, n in newest.items()
        for o in (oldest[jid],)
    ]


def mark_chat_error(
    conn: Connection, session_id: int, chat_jid: str, error: str | None, now: int
) -> None:
    """Record (or clear, with None) the last sync error of a chat (kept under the
    person's key: a chat named by number may live under its LID)."""
    chat_jid = canonical_to_write(conn, session_id, chat_jid)
    CHAT_ERROR.run(conn, [(session_id, chat_jid, error, now if error else None)])


def mark_fully_synced(conn: Connection, session_id: int, chat_jid: str, now: int) -> None:
    chat_jid = canonical_to_write(conn, session_id, chat_jid)
    FULLY_SYNCED.run(conn, [(session_id, chat_jid, True, now)])


__all__ = [
    "WriteResult",
    "mark_chat_error",
    "mark_fully_synced",
    "write_batch",
    "write_batches",
]
