"""One person, one key: rows under a phone JID merge into the LID once the pair is known.

On SQLite and PostgreSQL: every kind of row moves, a message stored in both forms is
kept once (row ids kept), a merge repeated changes nothing, a rolled-back merge leaves
the rows as they were, and later events in the number's form land under the LID.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import (
    Chat,
    ChatKind,
    Contact,
    Group,
    Message,
    MessageEdit,
    MessageKey,
    MessageKind,
    MessageRevoke,
    Participant,
    Reaction,
)
from wasync.jobs import queries as queue
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.identities import learn, resolve
from wasync.store.merge import merge_person
from wasync.store.schema import (
    chats,
    contacts,
    group_participants,
    groups,
    jobs,
    lid_mappings,
    messages,
    reactions,
    sync_state,
)
from wasync.store.sessions import ensure_session, set_jid
from wasync.sync.commit import commit_batch
from wasync.sync.publish import bus_events

ME = "5511999990000@s.whatsapp.net"
PN = "5511999990001@s.whatsapp.net"
LID = "123456789012345@lid"
OTHER = "5511999990002@s.whatsapp.net"
GROUP = "120363041234567890@g.us"
T = 1_700_000_000


def _session(db: Database) -> int:
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
        set_jid(conn, sid, ME)
        return sid


def _msg(chat: str, sender: str, mid: str, ts: int, text: str | None = None) -> Message:
    return Message(
        MessageKey(chat, sender, mid), ts, from_me=sender == ME, text=text or mid, push_name=None
    )


def _commit(db: Database, sid: int, *events: ev.Event) -> Batch:
    batch = Batch()
    for e in events:
        batch.add(e)
    commit_batch(db, sid, batch)
    return batch


def _snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    with db.read() as conn:
        for table in (
            messages, chats, contacts, reactions, group_participants, groups, sync_state,
            lid_mappings, jobs,
        ):  # fmt: skip
            cols = [c for c in table.c if c.name not in ("updated_at", "learned_at", "created_at")]
            out[table.name] = sorted(
                (tuple(r) for r in conn.execute(select(*cols)).all()), key=repr
            )
    return out


def _split_person(db: Database, sid: int) -> None:
    """A person written in both forms before anything said they are one."""
    _commit(
        db,
        sid,
        ev.ContactsUpserted((Contact(PN, name="Alice (book)", phone=PN.split("@")[0]),)),
        ev.ChatUpserted(Chat(PN, ChatKind.INDIVIDUAL, pinned=True, unread_count=2)),
        ev.ChatUpserted(Chat(LID, ChatKind.INDIVIDUAL, archived=True)),
        ev.GroupUpserted(
            Group(
                GROUP,
                "Team",
                owner_jid=PN,
                participants=(Participant(PN, is_admin=True), Participant(OTHER)),
            )
        ),
        # The direct chat by number: theirs, ours, and one also stored by LID.
        ev.MessageReceived(_msg(PN, PN, "P1", T + 1)),
        ev.MessageReceived(_msg(PN, ME, "P2", T + 2)),
        ev.MessageReceived(_msg(PN, PN, "BOTH", T + 3)),
        # The same chat by LID.
        ev.MessageReceived(_msg(LID, LID, "L1", T + 10)),
        ev.MessageReceived(_msg(LID, LID, "BOTH", T + 3)),
        # A group message by number, a reaction and a delete by the person there.
        ev.MessageReceived(_msg(GROUP, PN, "G1", T + 4)),
        ev.MessageReceived(_msg(GROUP, OTHER, "G2", T + 5)),
        ev.ReactionReceived(Reaction(MessageKey(GROUP, OTHER, "G2"), PN, "👍", T + 6)),
        ev.ReactionReceived(Reaction(MessageKey(PN, ME, "P2"), PN, "❤", T + 7)),
        ev.MessageEdited(MessageEdit(MessageKey(PN, PN, "P1"), "P1 edited", T + 8)),
        ev.MessageRevoked(MessageRevoke(MessageKey(GROUP, PN, "G1"), T + 9, PN)),
    )
    with db.write() as conn:
        conn.execute(
            update(sync_state)
            .where(sync_state.c.chat_jid == PN)
            .values(gap_status="pending", gap_since_timestamp=T + 2, gap_epoch=3)
        )
        queue.enqueue(conn, "avatar", session_id=sid, unique_key=PN, payload={"jid": PN})
        queue.enqueue(
            conn, "history.backfill", session_id=sid, unique_key=PN,
            payload={"chat": PN, "mode": "full", "pages": None},
        )  # fmt: skip
        queue.enqueue(
            conn, "history.backfill", session_id=sid, unique_key=LID,
            payload={"chat": LID, "mode": "older", "pages": 1},
        )  # fmt: skip


def test_a_learned_pair_merges_every_row_of_the_person(db: Database) -> None:
    sid = _session(db)
    _split_person(db, sid)
    with db.read() as conn:
        ids_before = dict(
            conn.execute(
                select(messages.c.message_id, messages.c.id).where(
                    messages.c.message_id.in_(["P1", "P2", "G1", "L1"])
                )
            ).all()
        )
    batch = _commit(db, sid, ev.ContactsUpserted((Contact(PN, lid=LID),)))

    assert [(m.lid, m.phone_jid, m.contact, m.chat, m.messages_moved) for m in batch.merges] == [
        (LID, PN, True, True, 4)
    ]
    with db.read() as conn:
        keys = {
            (r.chat_jid, r.sender_jid, r.message_id): r
            for r in conn.execute(select(messages)).all()
        }
        assert set(keys) == {
            (LID, LID, "P1"), (LID, ME, "P2"), (LID, LID, "BOTH"), (LID, LID, "L1"),
            (GROUP, LID, "G1"), (GROUP, OTHER, "G2"),
        }  # fmt: skip
        assert keys[(LID, LID, "P1")].text == "P1 edited"
        assert keys[(GROUP, LID, "G1")].revoked_by == LID
        # Row ids are kept: rows moved, not copied.
        for mid in ("P1", "P2", "G1", "L1"):
            assert next(r.id for r in keys.values() if r.message_id == mid) == ids_before[mid]
        people = conn.execute(select(contacts.c.jid, contacts.c.name, contacts.c.phone,
                                     contacts.c.lid)).all()  # fmt: skip
        assert [tuple(p) for p in people if p.jid in (PN, LID)] == [
            (LID, "Alice (book)", "5511999990001", LID)
        ]
        chat_rows = conn.execute(select(chats).where(chats.c.kind == "individual")).all()
        assert [(c.jid, c.pinned, c.archived, c.unread_count) for c in chat_rows] == [
            (LID, True, True, 2)
        ]
        assert conn.execute(select(groups.c.owner_jid)).scalar() == LID
        roster = conn.execute(
            select(group_participants.c.participant_jid, group_participants.c.is_admin,
                   group_participants.c.phone, group_participants.c.lid)
        ).all()  # fmt: skip
        assert sorted(tuple(r) for r in roster) == [
            (LID, True, "5511999990001", LID), (OTHER, False, "5511999990002", None)
        ]  # fmt: skip
        assert sorted(tuple(r) for r in conn.execute(select(
            reactions.c.chat_jid, reactions.c.target_sender_jid, reactions.c.sender_jid)).all()
        ) == [(GROUP, OTHER, LID), (LID, ME, LID)]  # fmt: skip
        state = queries.get_sync_state(conn, sid, LID)
        assert queries.get_sync_state(conn, sid, PN) is None
        assert state is not None
        assert (state.oldest_message_id, state.newest_message_id) == ("P1", "L1")
        assert state.gap_status == "pending" and state.gap_epoch == 4
        group_state = queries.get_sync_state(conn, sid, GROUP)
        assert group_state is not None and group_state.oldest_sender_jid == LID
        pending = conn.execute(select(jobs.c.kind, jobs.c.unique_key, jobs.c.payload)).all()
        assert sorted((k, u) for k, u, _ in pending) == [
            ("avatar", LID), ("history.backfill", LID)
        ]  # fmt: skip
        backfill = next(p for k, _, p in pending if k == "history.backfill")
        assert json.loads(backfill)["mode"] == "full"  # widened to what the number's request asked
        assert resolve(conn, sid, PN) == (LID, PN, LID)
        assert resolve(conn, sid, LID) == (LID, PN, LID)

    topics = [e.topic for e in bus_events("default", batch)]
    assert topics[:2] == ["contact.merged", "chat.merged"]
    data = bus_events("default", batch)[0].data
    assert data == {
        "jid": LID, "lid": LID, "phone": "5511999990001", "mergedJid": PN, "messagesMoved": 4
    }  # fmt: skip


def test_events_in_the_number_form_land_under_the_lid_once_it_is_known(db: Database) -> None:
    sid = _session(db)
    _commit(db, sid, ev.LidMappingsLearned(((LID, PN),)))
    batch = _commit(
        db,
        sid,
        ev.MessageReceived(_msg(PN, PN, "N1", T + 20)),
        ev.ContactsUpserted((Contact(PN, push_name="Alice"),)),
        ev.GroupUpserted(Group(GROUP, participants=(Participant(PN),))),
    )
    assert list(batch.messages) == [MessageKey(LID, LID, "N1")]
    assert list(batch.contacts) == [LID]
    with db.read() as conn:
        assert conn.execute(select(messages.c.chat_jid)).scalars().all() == [LID]
        assert conn.execute(select(contacts.c.jid, contacts.c.phone)).all() == [
            (LID, "5511999990001")
        ]
        assert conn.execute(select(group_participants.c.participant_jid)).scalar() == LID


def test_our_own_number_keeps_its_phone_jid(db: Database) -> None:
    sid = _session(db)
    own_lid = "999999999999999@lid"
    _commit(db, sid, ev.ContactsUpserted((Contact(ME, lid=own_lid),)))
    _commit(db, sid, ev.MessageReceived(_msg(PN, ME, "O1", T)))
    with db.read() as conn:
        assert conn.execute(select(lid_mappings)).all() == []
        assert conn.execute(select(messages.c.sender_jid)).scalar() == ME


def test_merging_twice_changes_nothing(db: Database) -> None:
    sid = _session(db)
    _split_person(db, sid)
    _commit(db, sid, ev.ContactsUpserted((Contact(LID, phone="5511999990001"),)))
    once = _snapshot(db)
    with db.write() as conn:
        assert merge_person(conn, sid, LID, PN, T) is None
        learn(conn, sid, [(PN, LID)], T)
    _commit(db, sid, ev.LidMappingsLearned(((LID, PN),)))
    assert _snapshot(db) == once


def test_restating_only_stored_pairs_writes_nothing_and_fails_nothing(db: Database) -> None:
    """A session starting on a mirror whose pairs are all stored restates them: with
    nothing new to insert, the transaction must still commit (an empty insert was a
    statement SQLite refused, and the writer retried it for ever)."""
    sid = _session(db)
    with db.write() as conn:
        learn(conn, sid, [(PN, LID)], T)
    before = _snapshot(db)
    _commit(db, sid, ev.IdentitiesRestated())  # what a session start commits
    with db.read() as conn:
        assert conn.execute(select(lid_mappings.c.lid, lid_mappings.c.learned_at)).all() == [
            (LID, T)
        ]
    assert _snapshot(db) == before


def test_a_rolled_back_merge_leaves_the_rows_as_they_were(db: Database) -> None:
    sid = _session(db)
    _split_person(db, sid)
    before = _snapshot(db)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.write() as conn:
        batch = learn(conn, sid, [(LID, PN)], T)
        assert batch.merges  # it did merge, inside the transaction
        raise Boom
    assert _snapshot(db) == before


def test_a_batch_retried_after_a_rollback_merges_again(db: Database) -> None:
    sid = _session(db)
    _split_person(db, sid)
    batch = Batch()
    batch.add(ev.ContactsUpserted((Contact(PN, lid=LID),)))
    with pytest.raises(RuntimeError), db.write() as conn:
        from wasync.store.identities import prepare

        prepare(conn, sid, batch, T)
        raise RuntimeError("the first attempt fails")
    commit_batch(db, sid, batch)
    assert len(batch.merges) == 1
    with db.read() as conn:
        assert conn.execute(select(chats.c.jid).where(chats.c.jid == PN)).all() == []


def test_a_placeholder_stored_by_number_gives_way_to_the_message_by_lid(db: Database) -> None:
    sid = _session(db)
    _commit(db, sid, ev.MessageEdited(MessageEdit(MessageKey(PN, PN, "X"), "new text", T + 5)))
    _commit(db, sid, ev.MessageReceived(_msg(LID, LID, "X", T, "old text")))
    _commit(db, sid, ev.LidMappingsLearned(((LID, PN),)))
    with db.read() as conn:
        rows = conn.execute(select(messages)).all()
    assert [(r.chat_jid, r.kind, r.text, r.edited_at) for r in rows] == [
        (LID, MessageKind.TEXT.value, "new text", T + 5)
    ]


async def test_a_mirror_written_before_it_knew_a_pair_merges_when_its_session_starts(
    db: Database,
) -> None:
    """Split rows from before (a contact row holding both forms, rows under each) merge
    as soon as the session starts, and the merge is published."""
    from wasync.config import Settings
    from wasync.engines.simulator import Network, NetworkConfig, SimulatorEngine
    from wasync.runtime import Runtime

    sid = _session(db)
    _split_person(db, sid)
    with db.write() as conn:  # what an older mirror wrote: the pair on the contact only
        conn.execute(update(contacts).where(contacts.c.jid == PN).values(lid=LID))
    runtime = Runtime(Settings(), db=db)
    await runtime.start()
    seen = runtime.bus.subscribe(topics=("chat.merged", "contact.merged"), maxsize=100)
    try:
        net = Network(NetworkConfig(seed=1, contacts=2, groups=0, individual_chats=1, messages=5))
        handle = await runtime.add_session("default", SimulatorEngine(net), engine_name="simulator")
        await handle.sync.flush()
        with db.read() as conn:
            assert conn.execute(select(chats.c.jid).where(chats.c.jid == PN)).all() == []
            assert conn.execute(select(messages).where(messages.c.chat_jid == PN)).all() == []
            assert conn.execute(select(lid_mappings.c.lid)).scalars().all() == [LID]
        topics = []
        while not seen._queue.empty():
            event = seen._queue.get_nowait()
            if event is not None:
                topics.append((event.topic, event.data["mergedJid"]))
        assert sorted(topics) == [("chat.merged", PN), ("contact.merged", PN)]
    finally:
        await runtime.stop()


def test_live_events_carry_both_forms_of_a_sender(db: Database) -> None:
    sid = _session(db)
    _commit(db, sid, ev.LidMappingsLearned(((LID, PN),)))
    batch = _commit(
        db,
        sid,
        ev.MessageReceived(_msg(PN, PN, "B1", T)),
        ev.ReactionReceived(Reaction(MessageKey(PN, PN, "B1"), PN, "👍", T + 1)),
        ev.ChatUpserted(Chat(PN, ChatKind.INDIVIDUAL)),
    )
    by_topic = {e.topic: e.data for e in bus_events("default", batch)}
    message, reaction, chat = by_topic["message"], by_topic["reaction"], by_topic["chat"]
    assert (message["senderJid"], message["senderPhone"], message["senderLid"]) == (
        LID, "5511999990001", LID
    )  # fmt: skip
    assert (reaction["senderJid"], reaction["senderPhone"]) == (LID, "5511999990001")
    assert (chat["jid"], chat["phone"], chat["lid"]) == (LID, "5511999990001", LID)


@pytest.mark.postgres
def test_a_pair_learned_while_another_writer_writes_under_the_number_leaves_no_split(
    pg_schema_url: str,
) -> None:
    """PostgreSQL runs writers at once: a writer that read the table before a pair was
    learned must not leave rows under the number once both commit (the identity lock
    makes the learner wait for it, and then merges what it wrote)."""
    import threading

    from wasync.store.identities import prepare
    from wasync.store.writes import write_batch

    db = Database(pg_schema_url)
    db.migrate()
    try:
        sid = _session(db)
        prepared, learned = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def write_under_number() -> None:
            try:
                batch = Batch()
                batch.add(ev.MessageReceived(_msg(PN, PN, "RACE", T)))
                with db.write() as conn:
                    prepare(conn, sid, batch, T)  # reads the table: no pair yet
                    prepared.set()
                    # Without the lock the learner commits here, before our rows exist.
                    learned.wait(1.0)
                    write_batch(conn, sid, batch, T)
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        def learn_pair() -> None:
            try:
                prepared.wait(10)
                _commit(db, sid, ev.LidMappingsLearned(((LID, PN),)))
                learned.set()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=f) for f in (write_under_number, learn_pair)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors and not any(t.is_alive() for t in threads)
        with db.read() as conn:
            keys = conn.execute(select(messages.c.chat_jid, messages.c.sender_jid)).all()
        assert [tuple(k) for k in keys] == [(LID, LID)]
    finally:
        db.close()


def test_a_picture_checked_by_number_after_the_merge_is_kept_under_the_lid(db: Database) -> None:
    from wasync.avatars.records import save_avatar

    sid = _session(db)
    _commit(db, sid, ev.ContactsUpserted((Contact(PN, name="Alice"),)))
    _commit(db, sid, ev.LidMappingsLearned(((LID, PN),)))
    with db.write() as conn:  # a check that began before the merge ends after it
        save_avatar(conn, sid, PN, picture="/media/avatars/x.jpg", picture_id="7", now=T)
    with db.read() as conn:
        rows = conn.execute(select(contacts.c.jid, contacts.c.profile_picture_id)).all()
    assert [tuple(r) for r in rows] == [(LID, "7")]
