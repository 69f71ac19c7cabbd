"""What puts avatar jobs in the queue: committed batches, bulk, and by hand."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Connection, select

from wasync.avatars.enqueue import (
    KIND,
    PRIORITY,
    Reason,
    batch_hook,
    enqueue_avatars,
    enqueue_session,
    has_avatar,
)
from wasync.avatars.records import save_avatar
from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Chat, ChatKind, Contact
from wasync.engines.simulator import Network
from wasync.store.db import Database
from wasync.store.schema import jobs
from wasync.store.sessions import ensure_session
from wasync.sync.commit import commit_batch

HOOK = batch_hook(max_attempts=4)


def batch_of(*events: ev.Event) -> Batch:
    batch = Batch()
    for event in events:
        batch.add(event)
    return batch


def pending(conn: Connection) -> dict[str, tuple[str, int, int]]:
    """unique_key -> (reason, priority, max_attempts) of queued/running avatar jobs."""
    rows = conn.execute(
        select(jobs.c.unique_key, jobs.c.payload, jobs.c.priority, jobs.c.max_attempts).where(
            jobs.c.kind == KIND, jobs.c.state.in_(("queued", "running"))
        )
    )
    return {
        r.unique_key: (json.loads(r.payload)["reason"], r.priority, r.max_attempts) for r in rows
    }


@pytest.fixture
def sid(db: Database) -> int:
    with db.write() as conn:
        return ensure_session(conn, "default", "simulator")


def directory(net: Network) -> Batch:
    return batch_of(
        ev.ContactsUpserted(tuple(net.contacts())),
        *(ev.ChatUpserted(c) for c in net.chats()),
        *(ev.GroupUpserted(g) for g in net.groups()),
    )


def test_synced_contacts_chats_and_groups_are_queued_once(db: Database, sid: int) -> None:
    net = Network.from_scale("tiny", 3)
    commit_batch(db, sid, directory(net), [HOOK])
    everyone = {c.jid for c in net.contacts()} | set(net.chat_jids())
    with db.read() as conn:
        queued = pending(conn)
    assert set(queued) == everyone
    assert set(queued.values()) == {("new", PRIORITY[Reason.NEW], 4)}

    # The same directory again (a reconnect): nothing new while they wait...
    commit_batch(db, sid, directory(net), [HOOK])
    with db.read() as conn:
        assert pending(conn) == queued
    # ...nor once they were checked: re-checks are the refresh scheduler's job.
    with db.write() as conn:
        conn.execute(jobs.delete())
        for jid in everyone:
            save_avatar(conn, sid, jid, picture="none", picture_id=None, now=1)
    commit_batch(db, sid, directory(net), [HOOK])
    with db.read() as conn:
        assert pending(conn) == {}


def test_a_first_message_from_a_stranger_queues_the_new_lead(db: Database, sid: int) -> None:
    net = Network.from_scale("tiny", 3)
    commit_batch(db, sid, directory(net), [HOOK])
    with db.write() as conn:
        conn.execute(jobs.delete())
    lead = net.add_lead()
    commit_batch(db, sid, batch_of(ev.MessageReceived(lead)), [HOOK])
    with db.read() as conn:
        assert pending(conn) == {lead.key.sender_jid: ("new", 0, 4)}
    # Known senders writing again cost nothing.
    later = net.add_message(lead.key.chat_jid)
    with db.write() as conn:
        conn.execute(jobs.delete())
        save_avatar(conn, sid, lead.key.sender_jid, picture="none", picture_id=None, now=1)
    commit_batch(db, sid, batch_of(ev.MessageReceived(later)), [HOOK])
    with db.read() as conn:
        assert pending(conn) == {}


def test_picture_changes_are_queued_first_and_hurry_a_waiting_refresh(
    db: Database, sid: int
) -> None:
    net = Network.from_scale("tiny", 3)
    first, second = (c.jid for c in net.contacts()[:2])
    commit_batch(db, sid, directory(net), [HOOK])
    with db.write() as conn:
        conn.execute(jobs.delete())
        for jid in (first, second):
            save_avatar(conn, sid, jid, picture="none", picture_id=None, now=1)
        enqueue_avatars(conn, sid, [second], Reason.REFRESH, max_attempts=4, now=5e9)
    changes = batch_of(ev.PictureChanged(first), ev.PictureChanged(second, removed=True))
    commit_batch(db, sid, changes, [HOOK])
    with db.read() as conn:
        queued = pending(conn)
        run_at = dict(
            conn.execute(select(jobs.c.unique_key, jobs.c.run_at).where(jobs.c.kind == KIND)).all()
        )
    assert queued[first] == ("changed", PRIORITY[Reason.CHANGED], 4)
    # The refresh job of `second` stays one job, but moves up and is due now.
    assert queued[second] == ("refresh", PRIORITY[Reason.CHANGED], 4)
    assert run_at[second] < 5e9


def test_the_job_commits_with_its_rows_or_not_at_all(db: Database, sid: int) -> None:
    net = Network.from_scale("tiny", 3)

    def broken(*_: object) -> None:
        raise RuntimeError("a later hook fails")

    with pytest.raises(RuntimeError):
        commit_batch(db, sid, directory(net), [HOOK, broken])
    with db.read() as conn:
        assert pending(conn) == {}


def test_bulk_sync_queues_everything_once_and_skips_what_has_no_picture(
    db: Database, sid: int
) -> None:
    net = Network.from_scale("tiny", 3)
    extras = batch_of(
        ev.ChatUpserted(Chat("status@broadcast", ChatKind.BROADCAST)),
        ev.ChatUpserted(Chat("123456789@newsletter", ChatKind.NEWSLETTER)),
        ev.ContactsUpserted((Contact("4917000000001@lid"),)),
    )
    commit_batch(db, sid, directory(net), [])
    commit_batch(db, sid, extras, [])
    expected = {c.jid for c in net.contacts()} | set(net.chat_jids()) | {"4917000000001@lid"}
    with db.write() as conn:
        assert enqueue_session(conn, sid, max_attempts=4) == (len(expected), len(expected))
    with db.write() as conn:
        assert enqueue_session(conn, sid, max_attempts=4) == (0, len(expected))
        assert set(pending(conn)) == expected


@pytest.mark.parametrize(
    ("jid", "expected"),
    [
        ("5511999990000@s.whatsapp.net", True),
        ("5511999990000:12@s.whatsapp.net", True),
        ("123456789012345@lid", True),
        ("120363041234567890@g.us", True),
        ("status@broadcast", False),
        ("12345@broadcast", False),
        ("123456789@newsletter", False),
        ("not a jid", False),
        ("../../etc/passwd", False),
    ],
)
def test_only_people_and_groups_have_avatars(jid: str, expected: bool) -> None:
    assert has_avatar(jid) is expected
