"""Gap fill after downtime: an outage longer than the offline retention leaves no hole."""

from __future__ import annotations

from wasync.domain.events import (
    Event,
    MessageEdited,
    MessageReceived,
    MessageRevoked,
    ReactionReceived,
)
from wasync.domain.models import Message
from wasync.engines.simulator import Faults, Network, NetworkConfig, SimulatorEngine
from wasync.store import queries
from wasync.store.db import Database

from ..waiting import eventually
from .mirror import assert_changes_mirrored, assert_no_duplicates
from .test_history_support import assert_mirror_covers, running

LIMIT = 10  # newest messages per chat fetched by the initial sync


def fifty_chats(seed: int) -> Network:
    return Network(
        NetworkConfig(seed=seed, contacts=60, groups=10, individual_chats=40, messages=5_000)
    )


def expected(net: Network, history: dict[str, int]) -> list[Message]:
    """The sparse initial sync of each chat, and everything newer."""
    return [
        net.message(jid, i)
        for jid in net.chat_jids()
        for i in range(max(0, history.get(jid, 0) - LIMIT), net.message_count(jid))
    ]


def chats_of(events: list[Event]) -> set[str]:
    """Chats that moved: a message, an edit, a delete or a reaction."""
    moved: set[str] = set()
    for e in events:
        match e:
            case MessageReceived(message=m):
                moved.add(m.key.chat_jid)
            case MessageEdited(edit=change) | MessageRevoked(revoke=change):
                moved.add(change.key.chat_jid)
            case ReactionReceived(reaction=r):
                moved.add(r.target.chat_jid)
    return moved


async def test_outage_longer_than_retention_leaves_no_hole(db: Database) -> None:
    net = fifty_chats(seed=3)
    history = {jid: net.message_count(jid) for jid in net.chat_jids()}
    engine = SimulatorEngine(net, Faults(offline_retention=100))
    async with running(db, engine, limit_per_chat=LIMIT) as h:
        await engine.push_live(300)
        await h.settle(engine)

        await engine.drop_connection()
        offline = await engine.push_live(1_500)  # the server keeps only the newest 100
        await h.reconnect(engine)
        await engine.push_live(200)  # traffic goes on while the gaps are filled
        await h.settle(engine)

        lost = offline[:-100]
        assert engine.stats.events_lost == len(lost)
        assert len(chats_of(lost)) >= 20  # holes in many chats, not one
        assert_mirror_covers(db, h.session_id, net, expected(net, history))
        assert_no_duplicates(db)
        # Not only which messages: edits, deletes and reactions lost with the offline
        # queue came back with the history pages of their span.
        assert_changes_mirrored(db, h.session_id, net)
        with db.read() as conn:
            for jid in net.chat_jids():
                state = queries.get_sync_state(conn, h.session_id, jid)
                assert state is not None and state.gap_status is None, jid
                assert state.last_error is None
                newest = net.message(jid, net.message_count(jid) - 1)
                assert state.newest_message_id == newest.key.message_id
        fills = h.jobs("history.gapfill")
        assert fills and all(j.state == "done" for j in fills)
        # Chats opened by new contacts during the outage were filled from their start.
        new_chats = set(net.chat_jids()) - set(history)
        assert new_chats & chats_of(lost)


async def test_an_outage_during_gap_fill_makes_one_larger_hole(db: Database) -> None:
    net = fifty_chats(seed=4)
    history = {jid: net.message_count(jid) for jid in net.chat_jids()}
    engine = SimulatorEngine(net, Faults(offline_retention=20, history_delay=0.005))
    async with running(db, engine, limit_per_chat=LIMIT) as h:
        await engine.drop_connection()
        await engine.push_live(400)
        await h.reconnect(engine)
        # The second outage comes while the first holes are being filled.
        await eventually(lambda: any(j.state == "running" for j in h.jobs("history.gapfill")))
        await engine.drop_connection()
        await engine.push_live(400)
        await h.reconnect(engine)
        await h.settle(engine)
        assert engine.stats.events_lost == 2 * (400 - 20)
        assert_mirror_covers(db, h.session_id, net, expected(net, history))
        assert_no_duplicates(db)


async def test_a_reconnect_without_loss_closes_the_gaps_cheaply(db: Database) -> None:
    net = fifty_chats(seed=5)
    history = {jid: net.message_count(jid) for jid in net.chat_jids()}
    engine = SimulatorEngine(net)
    async with running(db, engine, limit_per_chat=LIMIT) as h:
        await engine.drop_connection()
        offline = await engine.push_live(50)  # all of it replayed: nothing lost
        requests = engine.stats.history_requests
        await h.reconnect(engine)
        await h.settle(engine)
        assert engine.stats.events_lost == 0
        assert_mirror_covers(db, h.session_id, net, expected(net, history))
        # One request per chat that moved: its first page already meets the watermark.
        assert engine.stats.history_requests - requests <= len(chats_of(offline))
        with db.read() as conn:
            assert not [
                jid
                for jid in net.chat_jids()
                if (s := queries.get_sync_state(conn, h.session_id, jid)) and s.gap_status
            ]
