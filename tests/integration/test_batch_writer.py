"""The group-commit writer: everything put is committed, in few transactions."""

from __future__ import annotations

import asyncio

import pytest

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import Message, MessageKey
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.sessions import ensure_session
from wasync.store.writes import WriteResult
from wasync.sync.writer import BatchWriter

CHAT = "5511999990001@s.whatsapp.net"


def _event(i: int) -> ev.MessageReceived:
    return ev.MessageReceived(Message(MessageKey(CHAT, CHAT, f"M{i:06d}"), 1_700_000_000 + i))


async def test_every_event_is_committed_in_batches(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    commits: list[int] = []

    async def on_commit(batch: Batch, result: WriteResult) -> None:
        commits.append(len(batch))

    writer = BatchWriter(db, sid, max_batch=100, max_delay=0.05, on_commit=on_commit)
    writer.start()
    for i in range(1050):
        await writer.put(_event(i))
        await writer.put(_event(i))  # a duplicate delivery
    await writer.flush()
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 1050
    assert sum(commits) == 2100
    # Group commit: far fewer transactions than events, none larger than max_batch.
    assert len(commits) <= 2100 // 100 + 2 and max(commits) <= 100
    await writer.close()


async def test_a_lone_event_is_committed_after_the_delay(db: Database) -> None:
    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    committed = asyncio.Event()

    async def on_commit(batch: Batch, result: WriteResult) -> None:
        committed.set()

    writer = BatchWriter(db, sid, max_batch=1000, max_delay=0.02, on_commit=on_commit)
    writer.start()
    await writer.put(_event(1))
    await asyncio.wait_for(committed.wait(), timeout=10)  # no flush() needed
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 1
    await writer.close()


async def test_session_status_follows_lifecycle_events(db: Database) -> None:
    from wasync.store.sessions import get_session

    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    writer = BatchWriter(db, sid, max_delay=0.01)
    writer.start()
    await writer.put(ev.Connected("5511999990000@s.whatsapp.net"))
    await writer.flush()
    with db.read() as conn:
        assert get_session(conn, "s").status == "connected"
    await writer.put(ev.LoggedOut("logged out from the phone"))
    await writer.close()
    with db.read() as conn:
        row = get_session(conn, "s")
    assert (row.status, row.status_reason) == ("logged_out", "logged out from the phone")


async def test_an_unavailable_database_delays_but_loses_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasync.errors import StoreError
    from wasync.sync import writer as writer_module

    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    real = writer_module.commit_batch
    failures = {"left": 3}

    def flaky(*args: object, **kwargs: object) -> WriteResult:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreError("database write failed: connection refused")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "commit_batch", flaky)
    writer = BatchWriter(db, sid, max_batch=10, max_delay=0.01)
    writer.retry_delay = 0.01
    writer.start()
    for i in range(35):
        await writer.put(_event(i))
    await writer.close()
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 35
    assert writer.store_errors == 3


async def test_a_poison_event_is_skipped_and_the_rest_is_kept(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasync.sync import writer as writer_module

    with db.write() as conn:
        sid = ensure_session(conn, "s", "simulator")
    real = writer_module.commit_batch
    poison = _event(13)

    def picky(db_: Database, sid_: int, batch: Batch, hooks: object = ()) -> WriteResult:
        if poison.message.key in batch.messages:
            raise ValueError("cannot store this one")
        return real(db_, sid_, batch, hooks)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "commit_batch", picky)
    writer = BatchWriter(db, sid, max_batch=10, max_delay=0.01)
    writer.start()
    for i in range(30):
        await writer.put(_event(i))
    await writer.close()
    with db.read() as conn:
        assert queries.summary(conn, sid)["messages"] == 29
    assert writer.poisoned_events == 1
