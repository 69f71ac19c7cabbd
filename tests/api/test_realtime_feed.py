"""Client feeds: bounded, drop oldest, coalesce progress only for clients that lag."""

from __future__ import annotations

import asyncio

from wasync.api.realtime_hub import ClientFeed, RealtimeHub
from wasync.bus import BusEvent, EventBus
from wasync.config import Settings
from wasync.runtime import Runtime

from ..waiting import eventually


def progress(session: str, current: int) -> BusEvent:
    return BusEvent(session, "sync.progress", {"sessionId": session, "currentChat": current})


async def drain(feed: ClientFeed) -> list[BusEvent]:
    out = []
    while len(feed):
        event = await feed.next()
        assert event is not None
        out.append(event)
    return out


async def test_a_client_that_keeps_up_gets_every_event() -> None:
    feed = ClientFeed(["s"], coalesce_after=10)
    got: list[BusEvent] = []
    for i in range(100):
        feed.offer(progress("s", i))
        got.extend(await drain(feed))
    assert [e.data["currentChat"] for e in got] == list(range(100))
    assert feed.coalesced == feed.dropped == 0


async def test_a_lagging_client_gets_the_newest_progress_and_bounded_messages() -> None:
    feed = ClientFeed(["s"], maxsize=20, coalesce_after=5)
    for i in range(10):
        feed.offer(BusEvent("s", "message", {"n": i}))
    for i in range(50):
        feed.offer(progress("s", i))
        feed.offer(progress("t", i))  # another session's progress is its own key
    got = await drain(feed)
    assert len(got) <= 20
    latest = [e.data["currentChat"] for e in got if e.topic == "sync.progress"]
    assert latest[-2:] == [49, 49]
    assert feed.coalesced > 0
    assert [e.data["n"] for e in got if e.topic == "message"] == list(range(10))
    for i in range(100):
        feed.offer(BusEvent("s", "message", {"n": i}))
    got = await drain(feed)
    assert len(got) == 20 and feed.dropped == 80
    assert [e.data["n"] for e in got] == list(range(80, 100))  # the oldest went first


async def test_the_hub_never_waits_for_a_client_that_does_not_read() -> None:
    bus = EventBus()
    runtime = Runtime(Settings(database_url="sqlite://"), bus=bus)
    hub = RealtimeHub()
    await hub.start(runtime)
    stalled = hub.open_feed(["s"])
    reader = hub.open_feed(None)
    seen = 0

    async def read() -> None:
        nonlocal seen
        while await reader.next() is not None:
            seen += 1

    task = asyncio.create_task(read())
    for i in range(5000):
        bus.publish(BusEvent("s", "message", {"n": i}))
        if i % 100 == 0:
            bus.publish(progress("s", i))
            await asyncio.sleep(0.001)  # the reader reads as it goes; the stalled one never
    await eventually(lambda: seen == 5050)
    assert len(stalled) <= stalled.maxsize and stalled.dropped > 0
    assert hub.dropped == stalled.dropped
    hub.close_feed(stalled)
    await hub.stop()
    await task
    assert hub.dropped_closed >= stalled.dropped and not hub.feeds
