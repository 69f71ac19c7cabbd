"""The path from generated live events to the engine's single consumer.

Live events pass the delivery faults here (duplicates, reordering, a dropped
connection, limited offline retention); lifecycle events (Connected, Paired, ...)
skip them, as they are the engine's own state rather than traffic.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from wasync.domain import events as ev
from wasync.domain.events import Event
from wasync.engines.simulator.faults import Faults


@dataclass(slots=True)
class EngineStats:
    history_requests: int = 0
    history_timeouts: int = 0  # history requests whose answer never came (HistoryTimeout)
    picture_requests: int = 0
    pictures_rate_limited: int = 0  # picture requests answered 429
    downloads: int = 0
    events_delivered: int = 0  # live events handed to the consumer, duplicates included
    duplicates_delivered: int = 0
    events_lost: int = 0  # dropped from the offline queue by `offline_retention`


class Delivery:
    def __init__(self, faults: Faults, rng: random.Random, stats: EngineStats) -> None:
        self._faults = faults
        self._rng = rng
        self._stats = stats
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()  # None ends a stream
        self._pending: deque[tuple[Event, bool]] = deque()  # (event, is a duplicate)
        self._dropped_once = False

    @property
    def pending(self) -> int:
        """Live events waiting for a connection."""
        return len(self._pending)

    def emit(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def end_stream(self) -> None:
        self._queue.put_nowait(None)

    def forget_stream_ends(self) -> None:
        # An end marker nobody read belongs to an earlier connection; a consumer that
        # starts after a reconnect must not stop on it.
        kept = [e for e in self._drain() if e is not None]
        for event in kept:
            self._queue.put_nowait(event)

    def _drain(self) -> list[Event | None]:
        items: list[Event | None] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
            self._queue.task_done()
        return items

    async def stream(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            self._queue.task_done()  # "taken" is what `drained()` waits for
            if event is None:
                return
            yield event

    async def drained(self) -> None:
        await self._queue.join()

    def submit(self, events: Iterable[Event]) -> None:
        """Shape events by the delivery faults and queue them for delivery."""
        shaped: list[tuple[Event, bool]] = []
        rate = self._faults.duplicate_rate
        for event in events:
            shaped.append((event, False))
            if rate > 0.0 and self._rng.random() < rate:
                shaped.append((event, True))
        window = self._faults.reorder_window
        if window > 1:
            for start in range(0, len(shaped), window):
                chunk = shaped[start : start + window]
                self._rng.shuffle(chunk)
                shaped[start : start + window] = chunk
        self._pending.extend(shaped)

    def apply_retention(self, now: int | None = None) -> None:
        """Forget the oldest queued events beyond what the server keeps offline.

        `now` (the network's virtual clock) enables `offline_retention_seconds`.
        """
        max_age = self._faults.offline_retention_seconds
        if max_age is not None and now is not None:
            kept = deque(p for p in self._pending if _event_time(p[0], now) >= now - max_age)
            self._stats.events_lost += len(self._pending) - len(kept)
            self._pending = kept
        keep = self._faults.offline_retention
        if keep is None:
            return
        while len(self._pending) > keep:
            self._pending.popleft()
            self._stats.events_lost += 1

    def flush(self) -> bool:
        """Deliver queued events; True when the connection dropped (`disconnect_after`)."""
        limit = self._faults.disconnect_after
        while self._pending:
            if (
                limit is not None
                and not self._dropped_once
                and self._stats.events_delivered >= limit
            ):
                self._dropped_once = True
                return True
            event, duplicate = self._pending.popleft()
            self._queue.put_nowait(event)
            self._stats.events_delivered += 1
            self._stats.duplicates_delivered += duplicate
        return False


def _event_time(event: Event, default: int) -> int:
    """When a live event happened (virtual seconds); `default` for timeless ones."""
    match event:
        case ev.MessageReceived(message=m):
            return m.timestamp
        case ev.MessageEdited(edit=e):
            return e.edited_at
        case ev.MessageRevoked(revoke=r):
            return r.revoked_at
        case ev.ReactionReceived(reaction=r):
            return r.timestamp
        case ev.PictureChanged(timestamp=t) if t is not None:
            return t
        case _:
            return default
