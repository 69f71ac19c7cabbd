"""Fan-out of bus events to live clients (Socket.IO and WebSocket), one feed each.

The hub holds one bus subscription and hands each event to the feeds of the
clients that joined its session; handing over never waits. Each feed is bounded:
a client that reads too slowly loses its oldest events (counted) rather than
holding up the hub, and therefore ingestion. A client that falls behind (a backlog
of COALESCE_AFTER events) also has its progress events coalesced: a newer
`sync.progress` of a session replaces the unsent older one, so it still sees where
the sync is now, not where it was. A client that keeps up gets every event, so the
documented `sync_chats` sequence arrives whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from wasync.bus import BusEvent, Subscription
from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)

# Topics where only the newest pending event per key matters to a live client.
COALESCED = frozenset({"sync.progress", "history.progress"})
FEED_SIZE = 1000
COALESCE_AFTER = 50  # pending events before a client counts as slow
HUB_BUFFER = 20_000


def wire_name(topic: str) -> str:
    """The event name clients see: the requirement's `sync_chats` for sync progress."""
    return "sync_chats" if topic == "sync.progress" else topic


def coalesce_key(event: BusEvent) -> Hashable:
    chat = event.data.get("chatJid") if event.topic == "history.progress" else None
    return (event.topic, event.session, chat)


class ClientFeed:
    """The events waiting for one client, oldest first."""

    def __init__(
        self,
        sessions: Iterable[str] | None = (),
        maxsize: int = FEED_SIZE,
        coalesce_after: int = COALESCE_AFTER,
    ) -> None:
        # None: every session (a client that asked for all); otherwise the joined ones.
        self.sessions: set[str] | None = set(sessions) if sessions is not None else None
        self.maxsize = maxsize
        self.coalesce_after = coalesce_after
        self.dropped = 0
        self.coalesced = 0
        self.closed = False
        self._pending: OrderedDict[str, BusEvent] = OrderedDict()  # by event id
        self._latest: dict[Hashable, str] = {}  # coalesce key -> id of its newest event
        self._ready = asyncio.Event()

    def wants(self, event: BusEvent) -> bool:
        return self.sessions is None or event.session in self.sessions

    def offer(self, event: BusEvent) -> None:
        if self.closed:
            return
        if event.topic in COALESCED:
            key = coalesce_key(event)
            older = self._latest.get(key)
            lagging = len(self._pending) >= self.coalesce_after
            if lagging and older is not None and self._pending.pop(older, None) is not None:
                self.coalesced += 1
            self._latest[key] = event.id
        self._pending[event.id] = event
        if len(self._pending) > self.maxsize:
            self._pending.popitem(last=False)
            self.dropped += 1
        self._ready.set()

    async def next(self) -> BusEvent | None:
        """The oldest pending event; None once the feed is closed."""
        while not self._pending:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._pending.popitem(last=False)[1]

    def __len__(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._ready.set()


class RealtimeHub:
    """A runtime service: started and stopped with the runtime."""

    def __init__(self) -> None:
        self.feeds: set[ClientFeed] = set()
        self.dropped_closed = 0  # events dropped by feeds already gone (for metrics)
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_closed + sum(f.dropped for f in self.feeds)

    def open_feed(self, sessions: Iterable[str] | None = ()) -> ClientFeed:
        feed = ClientFeed(sessions)
        self.feeds.add(feed)
        return feed

    def close_feed(self, feed: ClientFeed) -> None:
        if feed in self.feeds:
            self.feeds.discard(feed)
            self.dropped_closed += feed.dropped
        feed.close()

    def dispatch(self, event: BusEvent) -> None:
        for feed in list(self.feeds):
            if feed.wants(event):
                feed.offer(event)

    async def start(self, runtime: Runtime) -> None:
        if self._task is not None:
            return
        self._subscription = runtime.bus.subscribe(maxsize=HUB_BUFFER)
        self._task = asyncio.create_task(self._run(self._subscription), name="realtime-hub")

    async def _run(self, subscription: Subscription) -> None:
        async for event in subscription:
            try:
                self.dispatch(event)
            except Exception:
                log.exception("realtime hub: event %s not dispatched", event.topic)

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for feed in list(self.feeds):
            self.close_feed(feed)

    async def session_added(self, handle: SessionHandle) -> None:
        pass

    async def session_removed(self, handle: SessionHandle) -> None:
        pass
