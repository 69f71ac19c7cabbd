"""Keyset pagination: complete, ordered, and stable while rows are inserted."""

from __future__ import annotations

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Chat, ChatKind, Message, MessageKey
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.sessions import ensure_session
from wasync.sync.commit import commit_batch

CHAT = "5511999990001@s.whatsapp.net"


def _commit(db: Database, sid: int, events: list[ev.Event]) -> None:
    batch = Batch()
    for e in events:
        batch.add(e)
    commit_batch(db, sid, batch)


def _msgs(start: int, stop: int, same_second_every: int = 3) -> list[ev.Event]:
    # Several messages share a timestamp, so the id tie-break is exercised.
    return [
        ev.MessageReceived(
            Message(MessageKey(CHAT, CHAT, f"M{i:06d}"), 1_700_000_000 + i // same_second_every)
        )
        for i in range(start, stop)
    ]


def test_message_pages_are_complete_and_stable_under_inserts(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    _commit(db, sid, _msgs(0, 95))
    seen: list[str] = []
    cursor = None
    inserted = 95
    while True:
        with db.read() as conn:
            page = queries.list_messages(conn, sid, CHAT, limit=10, before=cursor)
        seen += [r["message_id"] for r in page.items]
        # Newer messages arrive meanwhile: they must not shift older pages.
        _commit(db, sid, _msgs(inserted, inserted + 4))
        inserted += 4
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"M{i:06d}" for i in reversed(range(95))]

    # Reading forwards from the oldest page reaches everything, including new rows.
    with db.read() as conn:
        first = queries.list_messages(conn, sid, CHAT, limit=1, before=None)
        oldest = queries.list_messages(conn, sid, CHAT, limit=500)
    assert first.items[0]["message_id"] == f"M{inserted - 1:06d}"
    assert len(oldest.items) == inserted


def test_chat_list_pages_by_activity_with_search_and_kind(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    events: list[ev.Event] = []
    for i in range(30):
        jid = f"55119999{i:05d}@s.whatsapp.net" if i % 3 else f"1203630000000{i:05d}@g.us"
        kind = ChatKind.INDIVIDUAL if i % 3 else ChatKind.GROUP
        events.append(
            ev.ChatUpserted(Chat(jid, kind, name=f"Chat {i}", last_message_at=1000 + i // 2))
        )
    _commit(db, sid, events)
    got: list[str] = []
    cursor = None
    while True:
        with db.read() as conn:
            page = queries.list_chats(conn, sid, limit=7, cursor=cursor)
        got += [r["name"] for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(got) == 30 and len(set(got)) == 30
    with db.read() as conn:
        groups = queries.list_chats(conn, sid, kind="group", limit=100).items
        found = queries.list_chats(conn, sid, search="chat 1", limit=100).items
    assert {r["kind"] for r in groups} == {"group"} and len(groups) == 10
    assert sorted(r["name"] for r in found) == sorted(
        f"Chat {i}" for i in range(30) if str(i).startswith("1")
    )
