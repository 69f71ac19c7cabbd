"""In-process event bus: what was committed, fanned out to live consumers.

Publishing never blocks: each subscriber has a bounded queue, and when a slow
subscriber's queue is full its oldest event is dropped (and counted), so one slow
web client can never hold up ingestion. Durable consumers (webhooks) do not rely on
this bus: they are written to the jobs table inside the commit (see sync/hooks.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

# Topics. `sync.progress` carries the sync_chats contract payload.
TOPICS = (
    "message",
    "message.edit",
    "message.delete",
    "reaction",
    "chat",
    "contact",
    "group",
    "contact.merged",
    "chat.merged",
    "avatar",
    "session.status",
    "sync.progress",
    "history.progress",
    "queue",
)


@dataclass(frozen=True, slots=True)
class BusEvent:
    session: str  # session name
    topic: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: float = field(default_factory=time.time)
    # The node that published it, when another node did (cluster/events.py); None for
    # this process's own events. Side effects (webhooks of sync progress, the first
    # sync after pairing) belong to the process where the event happened.
    origin: str | None = None

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.topic,
            "session": self.session,
            "timestamp": self.timestamp,
            "data": self.data,
        }


class Subscription:
    def __init__(
        self,
        bus: EventBus,
        *,
        maxsize: int,
        topics: Iterable[str] | None,
        session: str | None,
        local: bool = False,
    ) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[BusEvent | None] = asyncio.Queue(maxsize)
        self.topics = frozenset(topics) if topics is not None else None
        self.session = session
        self.local = local
        self.dropped = 0
        self.closed = False

    def wants(self, event: BusEvent) -> bool:
        if self.session is not None and event.session != self.session:
            return False
        if self.local and event.origin is not None:
            return False
        return self.topics is None or event.topic in self.topics

    def offer(self, event: BusEvent) -> None:
        if self.closed:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> BusEvent | None:
        """The next event, or None once closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._subs.discard(self)
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[BusEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusEvent]:
        while True:
            event = await self.get()
            if event is None:
                return
            yield event


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0

    def subscribe(
        self,
        *,
        topics: Iterable[str] | None = None,
        session: str | None = None,
        maxsize: int = 1000,
        local: bool = False,
    ) -> Subscription:
        """Events of `topics` (all: None) of `session` (all: None); with `local`, only
        those of this process (not those other nodes relayed)."""
        sub = Subscription(self, maxsize=maxsize, topics=topics, session=session, local=local)
        self._subs.add(sub)
        return sub

    def publish(self, event: BusEvent) -> None:
        """Hand an event to every interested subscriber; never blocks, never raises."""
        self.published += 1
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)

    def publish_many(self, events: Iterable[BusEvent]) -> None:
        for event in events:
            self.publish(event)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
