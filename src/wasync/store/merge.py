"""Merge a person's rows kept under their phone JID into their LID, in one transaction.

Runs inside the transaction that learns the pair (store/identities.py). Idempotent:
once nothing is keyed by the number, a second merge finds nothing and changes nothing.
What moves, and how two rows of one person become one:

- contact and direct chat: one row under the LID; a name is taken from the row
  written last, filled from the other; pinned, archived, muted and unread if either
  says so; the picture of the latest check wins;
- messages (of the direct chat, and sent by the person anywhere): re-keyed in place,
  so row ids stay; a message stored in both forms is kept once (the real one over a
  placeholder, the later edit, the first delete); deletions made by the person;
- reactions (in the chat, to the person's messages, by the person): the newest wins;
- sync state: the newest and oldest marks span both; `fully_synced` is that of the
  older watermark; an open gap is kept (the older one) and its epoch bumped, so a
  fill under way starts again from the top of the merged chat;
- group rosters and owners; queued avatar and history jobs (a history request kept
  under the LID is widened to what the number's asked, never dropped).

Rows are found by index seeks only (primary keys, the message key's index with the
session's group chats as an IN list, the partial index on `revoked_by`), never a scan
of the session's messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, update
from sqlalchemy.engine import RowMapping

from wasync.domain.identity import digits_of
from wasync.domain.models import ChatKind, MessageKind, PersonMerged
from wasync.jobs import queries as queue
from wasync.store.schema import (
    chats,
    contacts,
    group_participants,
    groups,
    messages,
    reactions,
    sync_state,
)
from wasync.store.upsert import insert_for

CHUNK = 300
_AVATAR = ("profile_picture", "profile_picture_id", "profile_picture_timestamp")
_NAMES = ("name", "push_name", "business_name")
_MESSAGE_DATA = tuple(
    c.name
    for c in messages.c
    if c.name not in ("id", "session_id", "chat_jid", "sender_jid", "message_id")
)


def present(conn: Connection, session_id: int, phones: Sequence[str]) -> set[str]:
    """Which of these phone JIDs have rows to merge.

    Every row keyed by a person's number comes with a contact (senders become contacts,
    store/writes.py), a chat, a roster row or a message of their direct chat (an edit
    that overtook its message makes no chat), so these four say it.
    """
    out: set[str] = set()
    for start in range(0, len(phones), CHUNK):
        part = list(phones[start : start + CHUNK])
        for table, column in (
            (contacts, contacts.c.jid),
            (chats, chats.c.jid),
            (group_participants, group_participants.c.participant_jid),
            (messages, messages.c.chat_jid),
        ):
            out.update(
                conn.execute(
                    select(column)
                    .where(table.c.session_id == session_id, column.in_(part))
                    .distinct()
                ).scalars()
            )
    return out


def merge_person(
    conn: Connection, session_id: int, lid: str, pn: str, now: int, *, checked: bool = False
) -> PersonMerged | None:
    """Move every row kept under `pn` to `lid`; None when there was nothing to move.

    `checked`: the caller knows from `present()` that there are rows to move.
    """
    if not checked and not present(conn, session_id, [pn]):
        fill_forms(conn, session_id, lid, pn)
        return None
    contact = _merge_record(conn, contacts, session_id, lid, pn, _contact_values)
    chat = _merge_record(conn, chats, session_id, lid, pn, _chat_values)
    group_chats = _group_chats(conn, session_id)
    moved, wrote_in = _merge_messages(conn, session_id, lid, pn, group_chats)
    conn.execute(
        update(messages)
        .where(messages.c.session_id == session_id, messages.c.revoked_by == pn)
        .values(revoked_by=lid)
    )
    # Reactions by the person, or to their messages, are in the groups they wrote in or
    # belong to: only those are read (a group's reactions are read whole).
    p = group_participants.c
    member_of = conn.execute(
        select(p.group_jid).where(p.session_id == session_id, p.participant_jid == pn)
    ).scalars()
    _merge_reactions(conn, session_id, lid, pn, sorted(wrote_in | set(member_of)))
    _merge_sync_state(conn, session_id, lid, pn)
    _merge_rosters(conn, session_id, lid, pn)
    fill_forms(conn, session_id, lid, pn)
    _merge_jobs(conn, session_id, lid, pn)
    return PersonMerged(lid, pn, contact, chat, moved)


# Contacts and chats.


def fill_forms(conn: Connection, session_id: int, lid: str, pn: str) -> None:
    """The LID's contact and roster rows say both forms."""
    phone = digits_of(pn)
    for table, column in (
        (contacts, contacts.c.jid),
        (group_participants, group_participants.c.participant_jid),
    ):
        conn.execute(
            update(table)
            .where(table.c.session_id == session_id, column == lid, table.c.phone.is_(None))
            .values(phone=phone)
        )
    conn.execute(
        update(contacts)
        .where(contacts.c.session_id == session_id, contacts.c.jid == lid, contacts.c.lid.is_(None))
        .values(lid=lid)
    )


def _latest_picture(a: RowMapping | None, b: RowMapping) -> dict[str, Any]:
    rows = [r for r in (a, b) if r is not None and r["profile_picture_timestamp"] is not None]
    if not rows:
        return {}
    best = max(rows, key=lambda r: r["profile_picture_timestamp"])
    return {k: best[k] for k in _AVATAR}


def _newer_first(old: RowMapping | None, moved: RowMapping) -> list[RowMapping]:
    if old is None:
        return [moved]
    return sorted((old, moved), key=lambda r: r["updated_at"] or 0, reverse=True)


def _first(rows: Iterable[RowMapping], field: str) -> Any:
    return next((r[field] for r in rows if r[field] is not None), None)


def _contact_values(old: RowMapping | None, moved: RowMapping, lid: str, pn: str) -> dict[str, Any]:
    rows = _newer_first(old, moved)
    values: dict[str, Any] = {f: _first(rows, f) for f in _NAMES}
    values.update(phone=digits_of(pn), lid=lid, updated_at=max(r["updated_at"] for r in rows))
    values.update(_latest_picture(old, moved))
    return values


def _chat_values(old: RowMapping | None, moved: RowMapping, lid: str, pn: str) -> dict[str, Any]:
    rows = _newer_first(old, moved)

    def most(field: str) -> Any:
        present = [r[field] for r in rows if r[field] is not None]
        return max(present) if present else None

    values: dict[str, Any] = {
        "kind": ChatKind.INDIVIDUAL.value,
        "name": _first(rows, "name"),
        "last_message_at": most("last_message_at"),
        "unread_count": most("unread_count") or 0,
        "archived": any(r["archived"] for r in rows),
        "pinned": any(r["pinned"] for r in rows),
        "muted_until": most("muted_until"),
        "updated_at": most("updated_at"),
    }
    values.update(_latest_picture(old, moved))
    return values


def _merge_record(
    conn: Connection, table: Any, session_id: int, lid: str, pn: str, combine: Any
) -> bool:
    c = table.c
    rows = {
        r["jid"]: r
        for r in conn.execute(
            select(table).where(c.session_id == session_id, c.jid.in_([lid, pn]))
        ).mappings()
    }
    moved = rows.get(pn)
    if moved is None:
        return False
    old = rows.get(lid)
    values = combine(old, moved, lid, pn)
    conn.execute(delete(table).where(c.session_id == session_id, c.jid == pn))
    if old is None:
        conn.execute(table.insert().values(session_id=session_id, jid=lid, **values))
    else:
        conn.execute(update(table).where(c.session_id == session_id, c.jid == lid).values(**values))
    return True


# Messages.


def _group_chats(conn: Connection, session_id: int) -> list[str]:
    """The session's chats other than direct ones: where the person may have written."""
    rows = conn.execute(
        select(chats.c.jid).where(
            chats.c.session_id == session_id, chats.c.kind != ChatKind.INDIVIDUAL.value
        )
    )
    return sorted(rows.scalars())


def _select_messages(
    conn: Connection, session_id: int, chat_jids: Sequence[str], sender: str | None
) -> list[RowMapping]:
    m = messages.c
    out: list[RowMapping] = []
    for start in range(0, len(chat_jids), CHUNK):
        where = [m.session_id == session_id, m.chat_jid.in_(chat_jids[start : start + CHUNK])]
        if sender is not None:
            where.append(m.sender_jid == sender)
        out += conn.execute(select(messages).where(*where)).mappings().all()
    return out


def _combined(keep: RowMapping, other: RowMapping) -> dict[str, Any]:
    """One message stored twice: the real one over a placeholder, later edit, first delete."""
    values = {f: keep[f] for f in _MESSAGE_DATA}
    unknown = MessageKind.UNKNOWN.value
    if keep["kind"] == unknown and other["kind"] != unknown:
        values.update(
            {
                f: other[f]
                for f in _MESSAGE_DATA
                if f not in ("edited_at", "revoked_at", "revoked_by")
            }
        )
        if keep["edited_at"] is not None:
            values["text"] = keep["text"]
    if other["edited_at"] is not None and (
        keep["edited_at"] is None or other["edited_at"] > keep["edited_at"]
    ):
        values["edited_at"], values["text"] = other["edited_at"], other["text"]
    if keep["revoked_at"] is None and other["revoked_at"] is not None:
        values["revoked_at"], values["revoked_by"] = other["revoked_at"], other["revoked_by"]
    return values


def _merge_messages(
    conn: Connection, session_id: int, lid: str, pn: str, group_chats: list[str]
) -> tuple[int, set[str]]:
    """Move the person's messages; (how many moved, the group chats they wrote in)."""

    def moved_key(r: RowMapping) -> tuple[str, str, str]:
        chat = lid if r["chat_jid"] == pn else r["chat_jid"]
        sender = lid if r["sender_jid"] == pn else r["sender_jid"]
        return chat, sender, r["message_id"]

    moving = _select_messages(conn, session_id, [pn], None)
    moving += _select_messages(conn, session_id, group_chats, pn)
    if not moving:
        return 0, set()
    # What is already stored under the new keys (a message seen in both forms).
    m = messages.c
    staying: list[RowMapping] = []
    # Looked up by the whole key (chat, sender, ids): seeks, never a group's scan.
    by_target: dict[tuple[str, str], set[str]] = {}
    for r in moving:
        chat, sender, mid = moved_key(r)
        by_target.setdefault((chat, sender), set()).add(mid)
    for (chat, sender), ids in by_target.items():
        id_list = sorted(ids)
        for start in range(0, len(id_list), CHUNK):
            staying += (
                conn.execute(
                    select(messages).where(
                        m.session_id == session_id,
                        m.chat_jid == chat,
                        m.sender_jid == sender,
                        m.message_id.in_(id_list[start : start + CHUNK]),
                    )
                )
                .mappings()
                .all()
            )
    keepers: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in staying:
        keepers[(r["chat_jid"], r["sender_jid"], r["message_id"])] = {**r, "_moved": False}
    gone: list[int] = []
    for r in sorted(moving, key=lambda r: r["id"]):
        key = moved_key(r)
        keep = keepers.get(key)
        if keep is None:
            keepers[key] = {**r, "chat_jid": key[0], "sender_jid": key[1], "_moved": True}
            continue
        keep.update(_combined(keep, r))  # type: ignore[arg-type]
        keep["_moved"] = keep["_combined"] = True
        gone.append(r["id"])
    for start in range(0, len(gone), CHUNK):
        conn.execute(delete(messages).where(m.id.in_(gone[start : start + CHUNK])))
    changed = [k for k in keepers.values() if k["_moved"]]
    # Most rows only change key: one executemany; a message kept once of two is rewritten.
    moves = [
        {"_id": k["id"], "_chat": k["chat_jid"], "_sender": k["sender_jid"]}
        for k in changed
        if not k.get("_combined")
    ]
    if moves:
        conn.execute(
            update(messages)
            .where(m.id == bindparam("_id"))
            .values(chat_jid=bindparam("_chat"), sender_jid=bindparam("_sender")),
            moves,
        )
    for row in changed:
        if row.get("_combined"):
            values = {f: row[f] for f in ("chat_jid", "sender_jid", *_MESSAGE_DATA)}
            conn.execute(update(messages).where(m.id == row["id"]).values(**values))
    return len(moving), {r["chat_jid"] for r in moving if r["chat_jid"] != pn}


def _merge_reactions(
    conn: Connection, session_id: int, lid: str, pn: str, group_chats: list[str]
) -> None:
    x = reactions.c
    rows = list(
        conn.execute(select(reactions).where(x.session_id == session_id, x.chat_jid == pn))
        .mappings()
        .all()
    )
    for start in range(0, len(group_chats), CHUNK):
        rows += (
            conn.execute(
                select(reactions).where(
                    x.session_id == session_id,
                    x.chat_jid.in_(group_chats[start : start + CHUNK]),
                    or_(x.sender_jid == pn, x.target_sender_jid == pn),
                )
            )
            .mappings()
            .all()
        )
    if not rows:
        return
    newest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in rows:
        conn.execute(
            delete(reactions).where(
                x.session_id == session_id,
                x.chat_jid == r["chat_jid"],
                x.target_sender_jid == r["target_sender_jid"],
                x.target_message_id == r["target_message_id"],
                x.sender_jid == r["sender_jid"],
            )
        )
        swap = {pn: lid}
        key = (
            swap.get(r["chat_jid"], r["chat_jid"]),
            swap.get(r["target_sender_jid"], r["target_sender_jid"]),
            r["target_message_id"],
            swap.get(r["sender_jid"], r["sender_jid"]),
        )
        old = newest.get(key)
        if old is None or r["timestamp"] >= old["timestamp"]:
            newest[key] = {"emoji": r["emoji"], "timestamp": r["timestamp"]}
    values = [
        {"session_id": session_id, "chat_jid": k[0], "target_sender_jid": k[1],
         "target_message_id": k[2], "sender_jid": k[3], **v}
        for k, v in sorted(newest.items())
    ]  # fmt: skip
    stmt = insert_for(conn, reactions)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                "session_id",
                "chat_jid",
                "target_sender_jid",
                "target_message_id",
                "sender_jid",
            ],
            set_={"emoji": stmt.excluded.emoji, "timestamp": stmt.excluded.timestamp},
            where=x.timestamp <= stmt.excluded.timestamp,
        ),
        values,
    )


# Sync state.

_SENDER_FIELDS = (
    "newest_sender_jid",
    "oldest_sender_jid",
    "gap_since_sender_jid",
    "gap_until_sender_jid",
)


def _mark(r: RowMapping, which: str) -> tuple[int, str]:
    # A row without the mark sorts below every real one.
    ts = r[f"{which}_timestamp"]
    return (-1, "") if ts is None else (ts, r[f"{which}_message_id"] or "")


def _combined_state(old: RowMapping, moved: RowMapping) -> dict[str, Any]:
    rows = (old, moved)
    values: dict[str, Any] = {}
    newest = max(rows, key=lambda r: _mark(r, "newest"))
    marked = [r for r in rows if r["oldest_timestamp"] is not None] or [old]
    oldest = min(marked, key=lambda r: _mark(r, "oldest"))
    for f in ("message_id", "sender_jid", "timestamp"):
        values[f"newest_{f}"] = newest[f"newest_{f}"]
        values[f"oldest_{f}"] = oldest[f"oldest_{f}"]
    # Complete only if the part that reaches furthest back was complete.
    values["fully_synced"] = bool(oldest["fully_synced"])
    synced = [r["last_synced_at"] for r in rows if r["last_synced_at"] is not None]
    values["last_synced_at"] = max(synced) if synced else None
    errored = [r for r in rows if r["last_error"] is not None]
    values["last_error"] = errored[0]["last_error"] if errored else None
    values["last_error_at"] = errored[0]["last_error_at"] if errored else None
    gaps = [r for r in rows if r["gap_status"] is not None]
    gap_fields = [
        c.name for c in sync_state.c if c.name.startswith("gap_") and c.name != "gap_epoch"
    ]
    if gaps:
        # The older hole covers the newer one; the epoch moves so a fill restarts.
        gap = min(
            gaps,
            key=lambda r: r["gap_since_timestamp"] if r["gap_since_timestamp"] is not None else -1,
        )
        values.update({f: gap[f] for f in gap_fields})
        # Filled from the newest message again: the fill point was one form's only.
        values["gap_until_message_id"] = values["gap_until_sender_jid"] = None
        values["gap_until_timestamp"] = None
    else:
        values.update({f: None for f in gap_fields})
    values["gap_epoch"] = max(r["gap_epoch"] for r in rows) + (1 if gaps else 0)
    return values


def _merge_sync_state(conn: Connection, session_id: int, lid: str, pn: str) -> None:
    s = sync_state.c
    rows = {
        r["chat_jid"]: r
        for r in conn.execute(
            select(sync_state).where(s.session_id == session_id, s.chat_jid.in_([lid, pn]))
        ).mappings()
    }
    moved = rows.get(pn)
    if moved is not None:
        old = rows.get(lid)
        conn.execute(delete(sync_state).where(s.session_id == session_id, s.chat_jid == pn))
        if old is None:
            values = {k: v for k, v in moved.items() if k not in ("session_id", "chat_jid")}
            conn.execute(sync_state.insert().values(session_id=session_id, chat_jid=lid, **values))
        else:
            conn.execute(
                update(sync_state)
                .where(s.session_id == session_id, s.chat_jid == lid)
                .values(**_combined_state(old, moved))
            )
    # Marks name a message by its sender: one state row per chat, a short scan.
    for field in _SENDER_FIELDS:
        conn.execute(
            update(sync_state)
            .where(s.session_id == session_id, s[field] == pn)
            .values({field: lid})
        )


# Rosters and jobs.


def _merge_rosters(conn: Connection, session_id: int, lid: str, pn: str) -> None:
    p = group_participants.c
    conn.execute(
        update(groups)
        .where(groups.c.session_id == session_id, groups.c.owner_jid == pn)
        .values(owner_jid=lid)
    )
    rows = (
        conn.execute(
            select(group_participants).where(p.session_id == session_id, p.participant_jid == pn)
        )
        .mappings()
        .all()
    )
    for r in rows:
        old = (
            conn.execute(
                select(group_participants).where(
                    p.session_id == session_id,
                    p.group_jid == r["group_jid"],
                    p.participant_jid == lid,
                )
            )
            .mappings()
            .one_or_none()
        )
        conn.execute(
            delete(group_participants).where(
                p.session_id == session_id, p.group_jid == r["group_jid"], p.participant_jid == pn
            )
        )
        values = {
            "is_admin": r["is_admin"] or bool(old and old["is_admin"]),
            "is_super_admin": r["is_super_admin"] or bool(old and old["is_super_admin"]),
            "phone": digits_of(pn),
            "lid": lid,
            "display_name": (old["display_name"] if old else None) or r["display_name"],
        }
        if old is None:
            conn.execute(
                group_participants.insert().values(
                    session_id=session_id, group_jid=r["group_jid"], participant_jid=lid, **values
                )
            )
        else:
            conn.execute(
                update(group_participants)
                .where(
                    p.session_id == session_id,
                    p.group_jid == r["group_jid"],
                    p.participant_jid == lid,
                )
                .values(**values)
            )


def _merge_jobs(conn: Connection, session_id: int, lid: str, pn: str) -> None:
    now = time.time()
    for job, kept in queue.rekey_queued(conn, session_id, pn, lid, now):
        if kept is None or job.payload.get("mode") not in ("older", "full"):
            continue
        # A history request: the one kept under the LID asks at least as much.
        wider = dict(kept.payload)
        if job.payload.get("mode") == "full":
            wider["mode"], wider["pages"] = "full", None
        elif wider.get("mode") == "older":
            wider["pages"] = max(int(wider.get("pages") or 1), int(job.payload.get("pages") or 1))
        if wider != kept.payload:
            queue.replace_payload(conn, kept.id, wider, now)
