"""The process's group-commit writer: everything put is committed, in few transactions,
every session in order, a failing session isolated, a fenced session refused."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import select

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Message, MessageKey
from wasync.sessions.ownership import Ownership
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.schema import messages
from wasync.store.sessions import ensure_session
from wasync.store.writes import WriteResult
from wasync.sync.writer import GroupWriter

CHAT = "5511999990001@s.whatsapp.net"


def _event(i: int, chat: str = CHAT) -> ev.MessageReceived:
    return ev.MessageReceived(Message(MessageKey(chat, chat, f"M{i:06d}"), 1_700_000_000 + i))


def _sessions(db: Database, n: int) -> list[int]:
    with db.write() as conn:
        return [ensure_session(conn, f"s{i}", "simulator") for i in range(n)]


async def test_every_event_is_committed_in_batches(db: Database) -> None:
    (sid,) = _sessions(db, 1)
    commits: list[int] = []

    async def on_commit(batch: Batch, result: WriteResult) -> None:
        commits.append(len(batch))

    writer = GroupWriter(db, max_batch=100, max_delay=0.05)
    stream = writer.attach(sid, on_commit=on_commit)
    for i in range(1050):
        await stream.put(_event(i))
        await stream.put(_event(i))  # a duplicate delivery
    await stream.flush()
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 1050
    assert sum(commits) == 2100
    # Group commit: far fewer transactions than events, none larger than max_batch.
    assert len(commits) <= 2100 // 100 + 2 and max(commits) <= 100
    await writer.close()


async def test_a_lone_event_is_committed_after_the_delay(db: Database) -> None:
    (sid,) = _sessions(db, 1)
    committed = asyncio.Event()

    async def on_commit(batch: Batch, result: WriteResult) -> None:
        committed.set()

    writer = GroupWriter(db, max_batch=1000, max_delay=0.02)
    stream = writer.attach(sid, on_commit=on_commit)
    await stream.put(_event(1))
    await asyncio.wait_for(committed.wait(), timeout=10)  # no flush() needed
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 1
    await writer.close()


async def test_session_status_follows_lifecycle_events(db: Database) -> None:
    from wasync.store.sessions import get_session

    (sid,) = _sessions(db, 1)
    writer = GroupWriter(db, max_delay=0.01)
    stream = writer.attach(sid)
    await stream.put(ev.Connected("5511999990000@s.whatsapp.net"))
    await stream.flush()
    with db.read() as conn:
        assert get_session(conn, "s0").status == "connected"
    await stream.put(ev.LoggedOut("logged out from the phone"))
    await writer.close()
    with db.read() as conn:
        row = get_session(conn, "s0")
    assert (row.status, row.status_reason) == ("logged_out", "logged out from the phone")


async def test_sessions_share_group_commits_and_keep_their_own_order(db: Database) -> None:
    """Many sessions' events go in the same transactions; each session's commits arrive
    in the order its events were put, and nothing is lost or duplicated across them."""
    sids = _sessions(db, 20)
    seen: dict[int, list[str]] = {sid: [] for sid in sids}
    writer = GroupWriter(db, max_batch=10_000, max_delay=0.05)
    streams = {}
    for sid in sids:

        async def on_commit(batch: Batch, result: WriteResult, sid: int = sid) -> None:
            seen[sid].extend(m.key.message_id for m in batch.messages.values())

        streams[sid] = writer.attach(sid, on_commit=on_commit)
    rng = random.Random(7)
    order = [sid for sid in sids for _ in range(25)]
    rng.shuffle(order)
    counter = dict.fromkeys(sids, 0)
    for sid in order:
        await streams[sid].put(_event(counter[sid], chat=f"55119999{sid:05d}@s.whatsapp.net"))
        counter[sid] += 1
        if rng.random() < 0.05:
            await asyncio.sleep(0.01)
    for stream in streams.values():
        await stream.flush()
    # Far fewer transactions than sessions x windows: the sessions shared them.
    assert writer.groups < len(order) // 5
    with db.read() as conn:
        for sid in sids:
            stored = conn.execute(
                select(messages.c.message_id).where(messages.c.session_id == sid)
            ).scalars()
            assert sorted(stored) == [f"M{i:06d}" for i in range(25)]
            assert seen[sid] == [f"M{i:06d}" for i in range(25)]  # in order, once each
    await writer.close()


async def test_an_unavailable_database_delays_but_loses_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasync.errors import StoreError
    from wasync.sync import writer as writer_module

    sids = _sessions(db, 3)
    real = writer_module.write_batches
    failures = {"left": 3}

    def flaky(*args: object, **kwargs: object) -> list[WriteResult]:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreError("database write failed: connection refused")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "write_batches", flaky)
    writer = GroupWriter(db, max_batch=10, max_delay=0.01)
    writer.retry_delay = 0.01
    streams = [writer.attach(sid) for sid in sids]
    for i in range(35):
        for stream in streams:
            await stream.put(_event(i))
    await writer.close()
    with db.read() as conn:
        for sid in sids:
            assert queries.summary(conn, sid)["messages"] == 35
    assert writer.store_errors == 3


async def test_a_poison_event_is_skipped_and_other_sessions_do_not_notice(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasync.sync import writer as writer_module

    bad, good = _sessions(db, 2)
    real = writer_module.write_batches
    poison = _event(13)

    def picky(conn: object, items: list[tuple[int, Batch]], now: int) -> list[WriteResult]:
        for sid, batch in items:
            if sid == bad and poison.message.key in batch.messages:
                raise ValueError("cannot store this one")
        return real(conn, items, now)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "write_batches", picky)
    writer = GroupWriter(db, max_batch=10, max_delay=0.01)
    bad_stream, good_stream = writer.attach(bad), writer.attach(good)
    for i in range(30):
        await bad_stream.put(_event(i))
        await good_stream.put(_event(i))
    await writer.close()
    with db.read() as conn:
        assert queries.summary(conn, bad)["messages"] == 29
        assert queries.summary(conn, good)["messages"] == 30
    assert bad_stream.poisoned_events == 1
    assert good_stream.poisoned_events == 0


async def test_a_session_held_elsewhere_writes_nothing_and_the_others_go_on(
    db: Database,
) -> None:
    """Fencing: once another holder took a session (a new epoch), the old holder's events
    of that session are refused in the very transaction that commits the others'."""
    lost_sid, kept_sid = _sessions(db, 2)
    mine = Ownership.for_database(db, "node-a", "node a", ttl=60)
    lost = mine.acquire(lost_sid, "s0")
    kept = mine.acquire(kept_sid, "s1")
    fenced: list[int] = []
    writer = GroupWriter(db, max_delay=0.01)
    lost_stream = writer.attach(lost_sid, lease=lost, on_fenced=fenced.append)
    kept_stream = writer.attach(kept_sid, lease=kept)
    await lost_stream.put(_event(1))
    await kept_stream.put(_event(1))
    await lost_stream.flush()
    await kept_stream.flush()
    # Another process takes s0 over (its lease expired, say): the epoch moves on.
    with db.write() as conn:
        from wasync.store.schema import session_leases

        conn.execute(
            session_leases.update()
            .where(session_leases.c.session_id == lost_sid)
            .values(holder="node-b", epoch=session_leases.c.epoch + 1)
        )
    await lost_stream.put(_event(2))
    await kept_stream.put(_event(2))
    await kept_stream.flush()
    with pytest.raises(Exception, match="moved to another process"):
        await lost_stream.flush()
    assert fenced == [lost_sid]
    with db.read() as conn:
        assert queries.summary(conn, lost_sid)["messages"] == 1
        assert queries.summary(conn, kept_sid)["messages"] == 2
    await writer.close()
    mine.close()


async def test_a_steady_stream_of_batches_compiles_no_statement(db: Database) -> None:
    """The writer's statements are compiled once per dialect (store/statements.py): after a
    first batch of each shape, SQLAlchemy compiles nothing more, however many batches of
    however many sessions follow (counted by SQLAlchemy's own compiler)."""
    from sqlalchemy.sql.compiler import SQLCompiler

    from wasync.avatars.enqueue import batch_hook
    from wasync.domain.models import MessageEdit, Reaction

    sids = _sessions(db, 3)
    owner = Ownership.for_database(db, "me", "me", ttl=600)
    # Fenced, and with the avatar hook that runs in every live batch.
    writer = GroupWriter(db, max_delay=0.01, hooks=[batch_hook(3)])
    streams = [writer.attach(sid, lease=owner.acquire(sid, f"s{k}")) for k, sid in enumerate(sids)]

    async def round_of(i: int) -> None:
        for k, stream in enumerate(streams):
            chat = f"55119999{k:05d}@s.whatsapp.net"
            message = _event(i, chat)
            await stream.put(message)
            key = message.message.key
            await stream.put(ev.MessageEdited(MessageEdit(key, f"edited {i}", 1_800_000_000 + i)))
            await stream.put(ev.ReactionReceived(Reaction(key, chat, "👍", 1_800_000_000 + i)))
        for stream in streams:
            await stream.flush()

    await round_of(0)  # warm: each statement compiled once
    compiled = {"n": 0}
    original = SQLCompiler.__init__

    def counting(self: SQLCompiler, *args: object, **kwargs: object) -> None:
        compiled["n"] += 1
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    SQLCompiler.__init__ = counting  # type: ignore[method-assign]
    try:
        for i in range(1, 40):
            await round_of(i)
    finally:
        SQLCompiler.__init__ = original  # type: ignore[method-assign]
    await writer.close()
    owner.close()
    assert compiled["n"] == 0
    with db.read() as conn:
        assert all(queries.summary(conn, sid)["messages"] == 40 for sid in sids)
