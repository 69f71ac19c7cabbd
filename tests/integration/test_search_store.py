"""Message search on SQLite and PostgreSQL agrees with a brute-force match.

Random messages in two sessions, edits, revokes, placeholders (an edit that overtook
its message), a deleted session whose ids SQLite hands out again, keyset paging, and
changes made before the SQLite indexer ran: search must never return a message that
does not match as it is now, and once the indexer ran it must return exactly the
messages that do, newest first.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import delete, select

from tests.waiting import eventually
from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Message, MessageEdit, MessageKey, MessageKind, MessageRevoke
from wasync.search import SearchIndexer, catch_up
from wasync.store import search
from wasync.store.db import Database
from wasync.store.pagination import encode_cursor
from wasync.store.schema import messages, sessions
from wasync.store.sessions import ensure_session
from wasync.sync.commit import commit_batch

WORDS = ["apple", "banana", "cherry", "dusk", "echo", "fig", "grape", "hotel", "Ünïcode"]
CHATS = [f"55119000000{i:02d}@s.whatsapp.net" for i in range(3)] + ["120363000001@g.us"]


def _text(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(1, 5))
    return rng.choice([" ", ", ", "! "]).join(w.upper() if rng.random() < 0.2 else w for w in words)


class Mirror:
    """Writes through the real write path and remembers every message key."""

    def __init__(self, db: Database, seed: int) -> None:
        self.db = db
        self.rng = random.Random(seed)
        self.keys: dict[int, list[MessageKey]] = {}
        self.n = 0

    def session(self, name: str) -> int:
        with self.db.write() as conn:
            sid = ensure_session(conn, name, "simulator")
        self.keys.setdefault(sid, [])
        return sid

    def add(self, sid: int, count: int) -> None:
        batch = Batch()
        for _ in range(count):
            self.n += 1
            chat = self.rng.choice(CHATS)
            sender = chat if chat.endswith("whatsapp.net") else CHATS[0]
            key = MessageKey(chat, sender, f"M{self.n:06d}")
            # Equal timestamps on purpose: the id breaks ties.
            ts = 1_700_000_000 + self.rng.randint(0, self.n // 3 + 1) * 60
            body = None if self.rng.random() < 0.1 else _text(self.rng)
            batch.add(ev.MessageReceived(Message(key=key, timestamp=ts, text=body)))
            self.keys[sid].append(key)
        commit_batch(self.db, sid, batch)

    def change(self, sid: int, count: int) -> None:
        batch = Batch()
        for _ in range(count):
            key = self.rng.choice(self.keys[sid])
            ts = 1_800_000_000 + self.rng.randint(0, 10**6)
            if self.rng.random() < 0.6:
                batch.add(ev.MessageEdited(MessageEdit(key, _text(self.rng), ts)))
            else:
                batch.add(ev.MessageRevoked(MessageRevoke(key, ts, key.sender_jid)))
        # An edit that overtook its message makes a placeholder; the message follows.
        self.n += 1
        early = MessageKey(CHATS[1], CHATS[1], f"LATE{self.n}")
        batch.add(ev.MessageEdited(MessageEdit(early, "apple overtook", 1_800_000_001)))
        commit_batch(self.db, sid, batch)
        late = Batch()
        late.add(ev.MessageReceived(Message(key=early, timestamp=1_700_000_000, text="first")))
        commit_batch(self.db, sid, late)
        self.keys[sid].append(early)


def brute(db: Database, sid: int, words: list[str], chat: str | None = None) -> list[int]:
    m = messages.c
    with db.read() as conn:
        rows = conn.execute(
            select(m.id, m.timestamp, m.text, m.kind, m.revoked_at, m.chat_jid).where(
                m.session_id == sid
            )
        ).all()
    hits = [
        r
        for r in rows
        if r.kind != MessageKind.UNKNOWN.value
        and r.revoked_at is None
        and r.text
        and set(words) <= search.message_words(r.text)
        and (chat is None or r.chat_jid == chat)
    ]
    return [r.id for r in sorted(hits, key=lambda r: (r.timestamp, r.id), reverse=True)]


def found(
    db: Database, sid: int, query: str, chat: str | None = None, limit: int = 7
) -> list[dict[str, Any]]:
    """Every page of a search, following the cursors."""
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        with db.read() as conn:
            page = search.search_messages(
                conn, sid, query, chat_jid=chat, before=cursor, limit=limit
            )
        out += page.rows
        cursor = page.next_cursor
        if cursor is None:
            return out
    raise AssertionError("paging never ended")


QUERIES = [
    "apple",
    "banana cherry",
    "ECHO",
    "unicode",
    "üNÏcode",
    "fig, grape!",
    "nothing",
    "hotel dusk echo",
]


def check(db: Database, sid: int, *, indexed: bool) -> None:
    for query in QUERIES:
        words = search.query_words(query)
        for chat in (None, CHATS[1], CHATS[3]):
            expected = brute(db, sid, words, chat)
            got = found(db, sid, query, chat)
            ids = [r["id"] for r in got]
            assert len(ids) == len(set(ids)), "a message twice in the pages"
            for row in got:  # never a wrong hit, indexed or not
                assert row["session_id"] == sid and row["id"] in expected, (query, row)
            if indexed:
                assert ids == expected, (query, chat)
            else:
                # Whatever is returned comes in the order of the full answer.
                assert ids == [i for i in expected if i in set(ids)]


def index(db: Database) -> None:
    catch_up(db)
    with db.read() as conn:
        assert search.pending(conn) == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_search_agrees_with_brute_force_through_changes(db: Database, seed: int) -> None:
    mirror = Mirror(db, seed)
    one, two = mirror.session("one"), mirror.session("two")
    mirror.add(one, 150)
    mirror.add(two, 60)
    check(db, one, indexed=not db.is_sqlite)  # nothing indexed yet on SQLite
    index(db)
    check(db, one, indexed=True)
    check(db, two, indexed=True)

    # Changes to indexed messages and new messages, before the indexer runs again.
    mirror.change(one, 40)
    mirror.add(one, 30)
    check(db, one, indexed=not db.is_sqlite)
    index(db)
    check(db, one, indexed=True)

    # The newest session goes (its ids are the highest: SQLite hands them out again).
    with db.write() as conn:
        conn.execute(delete(sessions).where(sessions.c.id == two))
        search.catch_up(conn)  # as deleting a session does, in its transaction
    if db.is_sqlite:  # the cascade's deletes were queued, and left the index
        with db.read() as conn:
            left = conn.exec_driver_sql(
                "SELECT count(*) FROM messages_search WHERE messages_search MATCH ?",
                (f'scope:"s{two}"',),
            ).scalar_one()
        assert left == 0
    three = mirror.session("three")
    mirror.add(three, 50)
    mirror.change(three, 10)
    index(db)
    for sid in (one, three):
        check(db, sid, indexed=True)


def test_bad_queries_are_clear(db: Database) -> None:
    with db.read() as conn:
        for query, message in (
            ("", "has no words"),
            ("!!! ???", "has no words"),
            (" ".join(f"w{i}" for i in range(20)), "at most"),
            ("x" * 65, "longer than"),
        ):
            with pytest.raises(search.InvalidSearch, match=message):
                search.search_messages(conn, 1, query)


def test_any_cursor_numbers_page_without_error(db: Database) -> None:
    mirror = Mirror(db, 4)
    sid = mirror.session("one")
    mirror.add(sid, 30)
    index(db)
    everything = brute(db, sid, ["apple"])
    for start, expected in (
        ((2**62, 5), everything),
        ((2**40, -1), everything),
        ((-(2**40), 2**62), []),
        ((1_700_000_000 + 10**6, 2**62), everything),
        ((0, 0), []),
    ):
        with db.read() as conn:
            page = search.search_messages(
                conn, sid, "apple", before=encode_cursor(*start), limit=100
            )
        assert [r["id"] for r in page.rows] == expected, start


def test_a_migrated_database_holds_the_search_objects(db: Database) -> None:
    """The objects the schema comparison skips are there, with the settings that matter."""
    with db.read() as conn:
        if db.is_sqlite:
            rows = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master").all()
            names = {r.name for r in rows}
            sql = {r.name: r.sql or "" for r in rows}
            assert "remove_diacritics 0" in sql["messages_search"]
            assert "content=''" in sql["messages_search"]
            assert {"messages_search_update", "messages_search_delete"} <= names
            assert not any(r.type == "trigger" and "INSERT ON messages" in r.sql for r in rows)
            expected = {
                "messages_search",
                "messages_search_data",
                "messages_search_idx",
                "messages_search_config",
                "search_state",
                "search_queue",
            }
        else:
            rows = conn.exec_driver_sql(
                "SELECT c.relname AS name, array_to_string(c.reloptions, ',') AS options, "
                "pg_get_indexdef(c.oid) AS definition FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'i'"
            ).all()
            names = {r.name for r in rows}
            by_name = {r.name: r for r in rows}
            text_index = by_name["ix_messages_search_text"]
            assert text_index.options == "gin_pending_list_limit=256"
            assert "USING gin (to_tsvector('simple'" in text_index.definition
            assert '(session_id, "timestamp", id)' in (
                by_name["ix_messages_session_timestamp_id"].definition
            )
            expected = {"ix_messages_search_text", "ix_messages_session_timestamp_id"}
    assert expected <= names and expected <= search.SEARCH_OBJECTS


async def test_the_serve_indexer_catches_up_in_the_background(db: Database) -> None:
    mirror = Mirror(db, 3)
    sid = mirror.session("one")
    mirror.add(sid, 40)
    indexer = SearchIndexer(every=0.05)
    await indexer.start(SimpleNamespace(db=db))  # type: ignore[arg-type]
    try:

        def in_step() -> bool:
            with db.read() as conn:
                return search.pending(conn) == 0

        await eventually(in_step, within=20)
        check(db, sid, indexed=True)
        mirror.change(sid, 10)
        await eventually(in_step, within=20)
        check(db, sid, indexed=True)
    finally:
        await indexer.stop()
