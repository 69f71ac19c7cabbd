"""The simulator's history and offline knobs that history and gap fill are tested with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wasync.domain.events import Connected, Disconnected, Event, MessageReceived
from wasync.engines.base import HistoryTimeout, NotConnected
from wasync.engines.simulator import Faults, Network, SimulatorEngine


async def take(engine: SimulatorEngine, n: int) -> list[Event]:
    stream = engine.events()
    async with asyncio.timeout(5):
        return [await anext(stream) for _ in range(n)]


@pytest.fixture
async def engine() -> AsyncIterator[SimulatorEngine]:
    engine = SimulatorEngine(Network.from_scale("tiny", seed=31), Faults())
    await engine.connect()
    await take(engine, 1)  # Connected
    yield engine
    await engine.close()


async def test_answers_arrive_after_the_phone_took_its_time(engine: SimulatorEngine) -> None:
    jid = engine.network.chat_jids()[0]
    engine.faults.history_delay = 0.05
    task = asyncio.create_task(engine.request_history(jid, None, 5))
    await asyncio.sleep(0)
    assert not task.done()
    assert await task == engine.network.newest(jid, 5)[::-1]


async def test_a_connection_lost_before_the_answer_fails_the_request(
    engine: SimulatorEngine,
) -> None:
    engine.faults.history_delay = 0.05
    task = asyncio.create_task(engine.request_history(engine.network.chat_jids()[0], None, 5))
    await asyncio.sleep(0.01)
    await engine.drop_connection()
    with pytest.raises(NotConnected):
        await task


async def test_unanswered_requests_time_out(engine: SimulatorEngine) -> None:
    silent, fine = engine.network.chat_jids()[:2]
    engine.faults.timeout_chats = frozenset({silent})
    engine.faults.history_timeout = 0.01
    with pytest.raises(HistoryTimeout, match="did not answer"):
        await engine.request_history(silent, None, 5)
    assert await engine.request_history(fine, None, 5)
    engine.faults.history_delay = 0.05  # slower than the timeout: times out too
    with pytest.raises(HistoryTimeout):
        await engine.request_history(fine, None, 5)
    assert engine.stats.history_timeouts == 2


async def test_a_share_of_requests_times_out_the_same_way_for_a_seed() -> None:
    outcomes = []
    for _ in range(2):
        engine = SimulatorEngine(
            Network.from_scale("tiny", seed=31), Faults(history_timeout_rate=0.5, history_timeout=0)
        )
        await engine.connect()
        run = []
        for jid in engine.network.chat_jids() * 3:
            try:
                await engine.request_history(jid, None, 1)
                run.append(True)
            except HistoryTimeout:
                run.append(False)
        outcomes.append(run)
        await engine.close()
    assert outcomes[0] == outcomes[1]
    assert True in outcomes[0] and False in outcomes[0]


async def test_dropping_the_connection_keeps_the_stream_and_queues_traffic(
    engine: SimulatorEngine,
) -> None:
    await engine.drop_connection()
    sent = await engine.push_live(10)
    assert await take(engine, 1) == [Disconnected("connection lost (simulated)")]
    await engine.connect()
    events = await take(engine, 13)
    assert events[0] == Connected(engine.network.me) and events[2:12] == sent


async def test_time_based_retention_loses_what_is_older_than_it(engine: SimulatorEngine) -> None:
    net = engine.network
    jid = net.chat_jids()[0]
    await engine.drop_connection()
    start = net.now
    sent = [MessageReceived(net.add_message(jid, start + 10 * i)) for i in range(1, 21)]
    await engine.push(sent)
    engine.faults.offline_retention_seconds = 60  # of virtual time, at reconnect
    await engine.connect()
    kept = [e for e in sent if e.message.timestamp >= net.now - 60]
    events = await take(engine, 1 + 2 + len(kept) + 1)
    assert events[3:-1] == kept and len(kept) == 7
    assert engine.stats.events_lost == len(sent) - len(kept)


def test_history_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(history_timeout_rate=1.5)
    with pytest.raises(ValueError, match="negative"):
        Faults(history_delay=-1)
