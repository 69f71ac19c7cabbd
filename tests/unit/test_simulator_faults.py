"""Fault knobs of the simulator engine, observed through events() and requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wasync.domain.events import (
    Connected,
    Disconnected,
    Event,
    OfflineSyncCompleted,
    OfflineSyncStarted,
)
from wasync.engines.base import EngineError
from wasync.engines.simulator import Faults, Network, SimulatorEngine


async def take(engine: SimulatorEngine, n: int) -> list[Event]:
    stream = engine.events()
    async with asyncio.timeout(5):
        return [await anext(stream) for _ in range(n)]


@pytest.fixture
async def engine() -> AsyncIterator[SimulatorEngine]:
    engine = SimulatorEngine(Network.from_scale("tiny", seed=13), Faults())
    await engine.connect()
    await take(engine, 1)  # Connected
    yield engine
    await engine.close()


async def test_duplicates_repeat_events(engine: SimulatorEngine) -> None:
    engine.faults.duplicate_rate = 0.5  # knobs are read at the point of use
    sent = await engine.push_live(100)
    extra = engine.stats.duplicates_delivered
    assert 20 < extra < 80
    received = await take(engine, 100 + extra)
    assert engine.stats.events_delivered == 100 + extra
    firsts = []
    for event in received:
        if event not in firsts:
            firsts.append(event)
    assert firsts == sent  # duplicates only repeat; nothing is lost or reordered


async def test_duplicate_rate_one_doubles_everything(engine: SimulatorEngine) -> None:
    engine.faults.duplicate_rate = 1.0
    sent = await engine.push_live(10)
    assert await take(engine, 20) == [e for e in sent for _ in range(2)]


async def test_reordering_stays_within_windows(engine: SimulatorEngine) -> None:
    engine.faults.reorder_window = 5
    sent = await engine.push_live(50)
    received = await take(engine, 50)
    assert received != sent
    for start in range(0, 50, 5):
        window = received[start : start + 5]
        assert sorted(map(sent.index, window)) == list(range(start, start + 5))


async def test_disconnect_after_drops_once_and_queues_the_rest(engine: SimulatorEngine) -> None:
    engine.faults.disconnect_after = 10
    sent = await engine.push_live(30)
    first = await take(engine, 11)
    assert first[:10] == sent[:10]
    assert isinstance(first[10], Disconnected)
    assert engine.status == "disconnected"
    more = await engine.push_live(5)  # generated while away: queued
    await engine.connect()
    replay = await take(engine, 28)
    assert replay[:2] == [Connected(engine.network.me), OfflineSyncStarted(25)]
    assert replay[2:-1] == sent[10:] + more
    assert replay[-1] == OfflineSyncCompleted(25)
    await engine.push_live(20)  # the fault fires once
    assert len(await take(engine, 20)) == 20
    assert engine.status == "connected"


async def test_offline_retention_loses_the_oldest_events(engine: SimulatorEngine) -> None:
    engine.faults.offline_retention = 5
    await engine.disconnect()
    sent = await engine.push_live(20)
    await engine.connect()
    events = await take(engine, 9)
    assert events[:3] == [
        Disconnected("disconnect() called"),
        Connected(engine.network.me),
        OfflineSyncStarted(5),
    ]
    assert events[3:8] == sent[-5:]
    assert events[8] == OfflineSyncCompleted(5)
    assert engine.stats.events_lost == 15


async def test_failing_chats_raise(engine: SimulatorEngine) -> None:
    jids = engine.network.chat_jids()
    engine.faults.failing_chats = frozenset({jids[0]})
    with pytest.raises(EngineError, match="simulated"):
        await engine.request_history(jids[0], None, 5)
    assert await engine.request_history(jids[1], None, 5)


async def test_failing_chat_rate_picks_chats_by_hash(engine: SimulatorEngine) -> None:
    engine.faults.failing_chat_rate = 0.5
    outcomes = []
    for jid in engine.network.chat_jids() * 2:
        try:
            await engine.request_history(jid, None, 1)
            outcomes.append(True)
        except EngineError:
            outcomes.append(False)
    half = len(outcomes) // 2
    assert outcomes[:half] == outcomes[half:]  # the same chats fail every time
    assert True in outcomes and False in outcomes


async def test_latency_delays_requests(engine: SimulatorEngine) -> None:
    engine.faults.latency = 0.05
    task = asyncio.create_task(engine.list_chats())
    await asyncio.sleep(0)
    assert not task.done()
    assert await task == engine.network.chats()


def test_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(duplicate_rate=2)
    with pytest.raises(ValueError, match="negative"):
        Faults(latency=-1)
