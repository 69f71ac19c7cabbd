"""Initial sync on the simulator: the mirror equals the network's ground truth."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from wasync.domain.models import SyncProgress
from wasync.engines.simulator import Faults, Network, SimulatorEngine
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.schema import messages

from .mirror import assert_directory_mirrored, assert_messages_equal, assert_no_duplicates
from .standalone import Standalone


async def _sync(
    db: Database, engine: SimulatorEngine, limit: int, progress: list[SyncProgress] | None = None
) -> tuple[Standalone, object]:
    runner = Standalone(
        db,
        engine,
        limit_per_chat=limit,
        on_progress=progress.append if progress is not None else None,
    )
    await runner.start()
    report = await runner.initial_sync()
    await runner.flush()
    return runner, report


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_initial_sync_mirrors_contacts_groups_chats_and_newest_messages(
    db: Database, seed: int
) -> None:
    net = Network.from_scale("tiny", seed)
    engine = SimulatorEngine(net)
    limit = 7
    runner, report = await _sync(db, engine, limit)
    await runner.stop()
    assert runner.session_id is not None
    assert_directory_mirrored(db, runner.session_id, net)
    expected = [m for jid in net.chat_jids() for m in net.newest(jid, limit)]
    assert_messages_equal(db, runner.session_id, expected)
    assert report.messages == len(expected)  # type: ignore[attr-defined]
    assert report.failed_chats == []  # type: ignore[attr-defined]
    # Sync state says exactly which chats are complete: those whose first message the
    # page reached, as the engine says (a chat of exactly `limit` messages is complete).
    with db.read() as conn:
        for jid in net.chat_jids():
            state = queries.get_sync_state(conn, runner.session_id, jid)
            if net.message_count(jid) == 0:
                continue
            assert state is not None
            assert state.fully_synced == (net.message_count(jid) <= limit)
            newest = net.message(jid, net.message_count(jid) - 1)
            assert state.newest_message_id == newest.key.message_id


async def test_progress_events_follow_the_sync_chats_contract(db: Database) -> None:
    net = Network.from_scale("tiny", 5)
    progress: list[SyncProgress] = []
    runner, _ = await _sync(db, SimulatorEngine(net), 5, progress)
    await runner.stop()
    n = len(net.chat_jids())
    payloads = [p.as_payload() for p in progress]
    assert payloads[0] == {
        "sessionId": "default",
        "nChats": n,
        "currentChat": 0,
        "messagesSynced": 0,
    }
    rest = payloads[1:]
    assert len(rest) == 2 * n
    for i in range(n):
        saved, synced = rest[2 * i], rest[2 * i + 1]
        assert saved["currentChat"] == synced["currentChat"] == i + 1
        assert saved["chatId"] == synced["chatId"]
        assert saved["messagesSynced"] == 0
        expected = min(5, net.message_count(str(saved["chatId"])))
        assert synced["messagesSynced"] == expected
        assert all(p["nChats"] == n and p["sessionId"] == "default" for p in (saved, synced))
    assert {p["chatId"] for p in rest} == set(net.chat_jids())


async def test_a_failing_chat_is_reported_and_the_others_continue(db: Database) -> None:
    net = Network.from_scale("tiny", 9)
    bad = net.chat_jids()[1]
    engine = SimulatorEngine(net, Faults(failing_chats=frozenset({bad})))
    runner, report = await _sync(db, engine, 10)
    await runner.stop()
    assert runner.session_id is not None
    assert [f.chat_jid for f in report.failed_chats] == [bad]  # type: ignore[attr-defined]
    expected = [m for jid in net.chat_jids() if jid != bad for m in net.newest(jid, 10)]
    assert_messages_equal(db, runner.session_id, expected)
    with db.read() as conn:
        assert queries.failed_chats(conn, runner.session_id)[0][0] == bad
        assert queries.get_sync_state(conn, runner.session_id, bad) is not None


async def test_resync_after_recovery_clears_the_error(db: Database) -> None:
    net = Network.from_scale("tiny", 9)
    bad = net.chat_jids()[1]
    runner, _ = await _sync(db, SimulatorEngine(net, Faults(failing_chats=frozenset({bad}))), 10)
    await runner.stop()
    runner, report = await _sync(db, SimulatorEngine(net), 10)
    await runner.stop()
    assert report.failed_chats == []  # type: ignore[attr-defined]
    assert runner.session_id is not None
    with db.read() as conn:
        assert queries.failed_chats(conn, runner.session_id) == []
    assert_no_duplicates(db)


async def test_live_traffic_with_duplicates_and_reordering_converges(db: Database) -> None:
    net = Network.from_scale("tiny", 4)
    engine = SimulatorEngine(net, Faults(duplicate_rate=0.3, reorder_window=8))
    limit = 5
    runner, _ = await _sync(db, engine, limit)
    before = {jid: net.message_count(jid) for jid in net.chat_jids()}
    await engine.push_live(400)
    await runner.flush()
    await runner.stop()
    assert runner.session_id is not None
    sid = runner.session_id
    # Newest N of the history, plus everything that arrived live; nothing else.
    expected = [
        net.message(jid, i)
        for jid in net.chat_jids()
        for i in range(max(0, before.get(jid, 0) - limit), net.message_count(jid))
    ]
    assert_messages_equal(db, sid, expected)
    assert_no_duplicates(db)
    # Edits, revokes and reactions match the network's final state.
    with db.read() as conn:
        rows = {
            (r.chat_jid, r.sender_jid, r.message_id): r
            for r in conn.execute(select(messages).where(messages.c.session_id == sid))
        }
    for key, edit in net.edits().items():
        row = rows[(key.chat_jid, key.sender_jid, key.message_id)]
        assert (row.text, row.edited_at) == (edit.text, edit.edited_at)
    for key, revoke in net.revokes().items():
        assert rows[(key.chat_jid, key.sender_jid, key.message_id)].revoked_at == revoke.revoked_at
