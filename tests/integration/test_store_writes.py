"""Idempotent writes on SQLite and PostgreSQL: replays and reordering change nothing."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, text

from tests.schema import schema_diff
from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import (
    Chat,
    ChatKind,
    Contact,
    Group,
    MediaInfo,
    Message,
    MessageEdit,
    MessageKey,
    MessageKind,
    MessageRevoke,
    Participant,
    Reaction,
)
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.migrate import upgrade
from wasync.store.schema import chats, contacts, group_participants, messages, reactions
from wasync.store.sessions import ensure_session
from wasync.sync.commit import commit_batch

ALICE = "5511999990001@s.whatsapp.net"
BOB = "5511999990002@s.whatsapp.net"
ME = "5511999990000@s.whatsapp.net"
GROUP = "120363041234567890@g.us"


def _session(db: Database) -> int:
    with db.write() as conn:
        return ensure_session(conn, "default", "simulator")


def _msg(i: int, chat: str = ALICE, sender: str = ALICE, ts: int | None = None) -> Message:
    return Message(
        key=MessageKey(chat, sender, f"3EB0{i:016X}"),
        timestamp=ts if ts is not None else 1_700_000_000 + i,
        from_me=sender == ME,
        text=f"hello {i}",
        push_name="Alice" if sender == ALICE else None,
    )


def _commit(db: Database, sid: int, *events: ev.Event) -> None:
    batch = Batch()
    for e in events:
        batch.add(e)
    commit_batch(db, sid, batch)


def _snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    with db.read() as conn:
        for table in (messages, chats, contacts, reactions, group_participants):
            cols = [c for c in table.c if c.name not in ("id", "updated_at")]
            rows = conn.execute(select(*cols)).all()
            out[table.name] = sorted(tuple(r) for r in rows)
    return out


def test_fresh_migration_equals_schema(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = schema_diff(conn)
    assert diff == []


def test_a_database_of_the_first_release_upgrades_in_place(db_url: str) -> None:
    """Migrations are append-only: a mirror made by revision 0001 keeps its rows and
    reaches the same schema as a fresh install."""
    database = Database(db_url)
    try:
        upgrade(database, "0001")
        sid = _session(database)
        with database.write() as conn:  # the columns of 0001 only
            conn.execute(
                text(
                    "INSERT INTO sync_state (session_id, chat_jid, newest_message_id,"
                    " fully_synced) VALUES (:sid, :jid, 'M1', true)"
                ),
                {"sid": sid, "jid": ALICE},
            )
        database.migrate()
        _commit(database, sid, ev.MessageReceived(_msg(1)))
        with database.engine.connect() as conn:
            assert schema_diff(conn) == []
        with database.read() as conn:
            assert len(conn.execute(select(messages.c.message_id)).all()) == 1
            state = queries.get_sync_state(conn, sid, ALICE)
        assert state is not None and state.fully_synced
        assert state.gap_status is None and state.gap_epoch == 0
    finally:
        database.close()


def test_migrate_twice_is_harmless(db: Database) -> None:
    db.migrate()
    db.migrate()


def test_replaying_events_in_any_order_changes_nothing(db: Database) -> None:
    sid = _session(db)
    msgs = [_msg(i) for i in range(50)] + [_msg(100 + i, GROUP, BOB) for i in range(20)]
    stream: list[ev.Event] = [ev.MessageReceived(m) for m in msgs]
    stream += [
        ev.MessageEdited(MessageEdit(msgs[3].key, "edited once", 1_700_001_000)),
        ev.MessageEdited(MessageEdit(msgs[3].key, "edited twice", 1_700_002_000)),
        ev.MessageRevoked(MessageRevoke(msgs[5].key, 1_700_003_000, ALICE)),
        ev.ReactionReceived(Reaction(msgs[7].key, BOB, "👍", 1_700_004_000)),
        ev.ReactionReceived(Reaction(msgs[7].key, BOB, None, 1_700_005_000)),
        ev.ReactionReceived(Reaction(msgs[8].key, ME, "❤️", 1_700_006_000)),
    ]
    for e in stream:
        _commit(db, sid, e)
    expected = _snapshot(db)

    rng = random.Random(7)
    for _ in range(3):
        shuffled = stream * 2
        rng.shuffle(shuffled)
        # Replay in random batches, each event twice.
        i = 0
        while i < len(shuffled):
            n = rng.randint(1, 15)
            _commit(db, sid, *shuffled[i : i + n])
            i += n
        assert _snapshot(db) == expected

    with db.read() as conn:
        rows = {r.message_id: r for r in conn.execute(select(messages))}
        assert rows[msgs[3].key.message_id].text == "edited twice"
        assert rows[msgs[5].key.message_id].revoked_at == 1_700_003_000
        reacts = {r.target_message_id: r.emoji for r in conn.execute(select(reactions))}
        assert reacts == {msgs[7].key.message_id: None, msgs[8].key.message_id: "❤️"}
        assert queries.summary(conn, sid)["messages"] == 70


def test_edit_and_revoke_that_overtake_their_message(db: Database) -> None:
    sid = _session(db)
    m = _msg(1)
    _commit(db, sid, ev.MessageEdited(MessageEdit(m.key, "new text", m.timestamp + 60)))
    _commit(db, sid, ev.MessageRevoked(MessageRevoke(_msg(2).key, m.timestamp + 90)))
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 0  # placeholders are not messages
    _commit(db, sid, ev.MessageReceived(m), ev.MessageReceived(_msg(2)))
    with db.read() as conn:
        rows = {r.message_id: r for r in conn.execute(select(messages))}
    first = rows[m.key.message_id]
    assert (first.kind, first.text, first.timestamp) == ("text", "new text", m.timestamp)
    assert rows[_msg(2).key.message_id].revoked_at == m.timestamp + 90
    # An older edit arriving late does not win.
    _commit(db, sid, ev.MessageEdited(MessageEdit(m.key, "stale", m.timestamp + 30)))
    with db.read() as conn:
        text = conn.execute(
            select(messages.c.text).where(messages.c.message_id == m.key.message_id)
        )
        assert text.scalar_one() == "new text"


def test_sync_state_and_chat_activity_only_move_outwards(db: Database) -> None:
    sid = _session(db)
    _commit(db, sid, *(ev.MessageReceived(_msg(i)) for i in range(10, 20)))
    _commit(db, sid, *(ev.MessageReceived(_msg(i)) for i in range(0, 5)))  # older page
    _commit(db, sid, *(ev.MessageReceived(_msg(i)) for i in range(12, 15)))  # overlap
    with db.read() as conn:
        state = queries.get_sync_state(conn, sid, ALICE)
        chat = conn.execute(select(chats).where(chats.c.jid == ALICE)).one()
    assert state is not None
    assert state.newest_message_id == _msg(19).key.message_id
    assert state.oldest_message_id == _msg(0).key.message_id
    assert (state.oldest_timestamp, state.newest_timestamp) == (
        _msg(0).timestamp,
        _msg(19).timestamp,
    )
    assert chat.last_message_at == _msg(19).timestamp
    assert chat.kind == "individual"


def test_partial_contact_updates_keep_known_fields(db: Database) -> None:
    sid = _session(db)
    _commit(
        db, sid, ev.ContactsUpserted((Contact(ALICE, name="Alice Silva", phone="5511999990001"),))
    )
    _commit(db, sid, ev.MessageReceived(_msg(1)))  # carries only a push name
    with db.read() as conn:
        row = conn.execute(select(contacts).where(contacts.c.jid == ALICE)).one()
    assert (row.name, row.push_name, row.phone) == ("Alice Silva", "Alice", "5511999990001")


def test_group_membership_is_replaced_not_accumulated(db: Database) -> None:
    sid = _session(db)
    g1 = Group(GROUP, "Team", participants=(Participant(ME, is_admin=True), Participant(ALICE)))
    g2 = Group(GROUP, "Team 2", participants=(Participant(ME, is_admin=True), Participant(BOB)))
    _commit(db, sid, ev.GroupUpserted(g1))
    _commit(db, sid, ev.GroupUpserted(g2))
    _commit(db, sid, ev.GroupUpserted(g2))
    with db.read() as conn:
        members = sorted(
            conn.execute(
                select(group_participants.c.participant_jid, group_participants.c.is_admin)
            )
        )
        chat = conn.execute(select(chats).where(chats.c.jid == GROUP)).one()
    assert [(j, bool(a)) for j, a in members] == [(ME, True), (BOB, False)]
    assert (chat.kind, chat.name) == ("group", "Team 2")


def test_media_metadata_round_trips(db: Database) -> None:
    sid = _session(db)
    media = MediaInfo(
        mimetype="image/jpeg",
        size=1234,
        sha256="ab" * 32,
        enc_sha256="cd" * 32,
        media_key="a2V5",
        direct_path="/v/t62/abc",
        url="http://127.0.0.1/x",
        filename=None,
    )
    m = Message(
        MessageKey(ALICE, ALICE, "3EB0MEDIA"),
        1_700_000_000,
        kind=MessageKind.IMAGE,
        text="caption",
        media=media,
        quoted_id="3EB0QUOTED",
    )
    _commit(db, sid, ev.MessageReceived(m))
    with db.read() as conn:
        (stored,) = queries.all_messages(conn, sid)
    assert stored == m


def test_explicit_chat_metadata_and_history_batch(db: Database) -> None:
    sid = _session(db)
    chat = Chat(BOB, ChatKind.INDIVIDUAL, name="Bob", unread_count=3, archived=True, pinned=True)
    batch = ev.HistoryBatch(
        ev.HistorySyncType.INITIAL_BOOTSTRAP,
        chats=(chat,),
        messages=(_msg(1, BOB, BOB), _msg(2, BOB, ME)),
        contacts=(Contact(BOB, push_name="Bobby"),),
    )
    _commit(db, sid, batch)
    _commit(db, sid, batch)
    with db.read() as conn:
        row = conn.execute(select(chats).where(chats.c.jid == BOB)).one()
        counts = queries.summary(conn, sid)
    assert (row.name, row.unread_count, bool(row.archived), bool(row.pinned)) == (
        "Bob",
        3,
        True,
        True,
    )
    assert row.last_message_at == _msg(2).timestamp
    assert counts["messages"] == 2


@pytest.mark.parametrize("bad", ["", "x", "!!!", "bm90IGpzb24", "WzEsMiwzXQ"])
def test_bad_cursor_is_a_clear_error(db: Database, bad: str) -> None:
    from wasync.store.pagination import InvalidCursor

    sid = _session(db)
    with db.read() as conn, pytest.raises(InvalidCursor, match="invalid cursor"):
        queries.list_messages(conn, sid, ALICE, before=bad or "=")


def test_a_group_record_does_not_reset_chat_metadata(db: Database) -> None:
    sid = _session(db)
    chat = Chat(GROUP, ChatKind.GROUP, name="Team", unread_count=4, archived=True, pinned=True)
    _commit(db, sid, ev.ChatUpserted(chat))
    _commit(db, sid, ev.GroupUpserted(Group(GROUP, "Team renamed", participants=())))
    with db.read() as conn:
        row = conn.execute(select(chats).where(chats.c.jid == GROUP)).one()
    assert (row.name, row.unread_count, bool(row.archived), bool(row.pinned)) == (
        "Team renamed",
        4,
        True,
        True,
    )


def test_own_jid_is_remembered_and_complete_chats_are_marked(db: Database) -> None:
    from wasync.store.sessions import get_session

    sid = _session(db)
    _commit(db, sid, ev.Paired(ME))
    with db.read() as conn:
        assert get_session(conn, "default").jid == ME
    _commit(db, sid, ev.Connected("5511999990009@s.whatsapp.net"))
    history = ev.HistoryBatch(ev.HistorySyncType.FULL, messages=(_msg(1),), complete_chats=(ALICE,))
    _commit(db, sid, history)
    with db.read() as conn:
        assert get_session(conn, "default").jid == "5511999990009@s.whatsapp.net"
        state = queries.get_sync_state(conn, sid, ALICE)
    assert state is not None and state.fully_synced
