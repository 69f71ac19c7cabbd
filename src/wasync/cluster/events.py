"""The live event bus across nodes, through PostgreSQL LISTEN/NOTIFY.

Each node relays what its own sessions publish on its bus to every other node, and
publishes what others relay on its own bus, marked with their origin: a Socket.IO or
WebSocket client on any node sees every event of the sessions it joined, wherever
they run. Events of one session come from the one node that runs it, relayed in the
order they were published, and PostgreSQL delivers notifications in commit order:
the order per session holds across nodes.

A notification carries at most 8,000 bytes: events are packed into as few as fit,
and an event larger than that alone is written to `bus_spill` and its row id sent
instead. Like the in-process bus, this is for live consumers: durable delivery
(webhooks, brokers) goes through the jobs table, not through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from sqlalchemy import delete, insert, select

from wasync.bus import BusEvent, EventBus, Subscription
from wasync.cluster.notify import Notifier
from wasync.store.db import Database
from wasync.store.schema import bus_spill

log = logging.getLogger(__name__)

CHANNEL = "wasync_events"
MAX_PAYLOAD = 7_900  # PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more
SPILL_KEEP = 300.0  # seconds a spilled event is kept for slow readers
RELAY_QUEUE = 100_000  # events of this node waiting to be relayed, at most


def _encode(event: BusEvent) -> dict[str, Any]:
    return {
        "s": event.session,
        "t": event.topic,
        "d": event.data,
        "i": event.id,
        "ts": event.timestamp,
    }


def _decode(item: dict[str, Any], origin: str) -> BusEvent:
    return BusEvent(
        str(item["s"]),
        str(item["t"]),
        item.get("d") or {},
        id=str(item["i"]),
        timestamp=float(item["ts"]),
        origin=origin,
    )


def pack(node: str, events: list[BusEvent]) -> tuple[list[str], list[str]]:
    """Notification payloads for `events` in order, and events too large for one
    (returned as JSON to spill). Each payload is {"o": node, "e": [...]}."""
    payloads: list[str] = []
    spills: list[str] = []
    head = f'{{"o":{json.dumps(node)},"e":['
    parts: list[str] = []
    size = len(head) + 2
    for event in events:
        text = json.dumps(_encode(event), separators=(",", ":"), default=str)
        if len(head) + len(text) + 2 > MAX_PAYLOAD:
            if parts:
                payloads.append(head + ",".join(parts) + "]}")
                parts, size = [], len(head) + 2
            spills.append(text)
            payloads.append("")  # a placeholder: the spilled row's reference goes here
            continue
        if size + len(text) + 1 > MAX_PAYLOAD:
            payloads.append(head + ",".join(parts) + "]}")
            parts, size = [], len(head) + 2
        parts.append(text)
        size += len(text) + 1
    if parts:
        payloads.append(head + ",".join(parts) + "]}")
    return payloads, spills


class ClusterBus:
    """Relays this node's bus events to the other nodes, and theirs onto this bus."""

    def __init__(self, node: str, bus: EventBus, db: Database, notifier: Notifier) -> None:
        self.node = node
        self.bus = bus
        self.db = db
        self.notifier = notifier
        self.relayed = 0
        self.received = 0
        self.dropped = 0
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        # Notifications of other nodes, handled one at a time: a spilled event is read
        # before the next notification is published, so the order holds.
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self._last_prune = 0.0
        notifier.on(CHANNEL, self._incoming.put_nowait)

    async def start(self) -> None:
        self._subscription = self.bus.subscribe(maxsize=RELAY_QUEUE, local=True)
        self._task = asyncio.create_task(self._relay(), name="cluster-bus-relay")
        self._consumer = asyncio.create_task(self._consume(), name="cluster-bus-in")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5.0)
            self._task = None
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None

    async def _relay(self) -> None:
        sub = self._subscription
        assert sub is not None
        while True:
            event = await sub.get()
            if event is None:
                return
            batch = [event]
            # Whatever else is waiting goes in the same round trip.
            while len(batch) < 500:
                try:
                    more = sub._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if more is None:
                    sub.closed = True
                    break
                batch.append(more)
            try:
                await self._send(batch)
                self.relayed += len(batch)
            except Exception:
                self.dropped += len(batch)
                log.warning("could not relay %d live events to the other nodes", len(batch))
            self.dropped = self.dropped + sub.dropped
            sub.dropped = 0
            if sub.closed and sub._queue.empty():
                return

    async def _send(self, events: list[BusEvent]) -> None:
        payloads, spills = pack(self.node, events)
        if spills:
            refs = await asyncio.to_thread(self._spill, spills)
            it = iter(refs)
            payloads = [p or json.dumps({"o": self.node, "r": next(it)}) for p in payloads]
        await self.notifier.send(CHANNEL, payloads)

    def _spill(self, texts: list[str]) -> list[int]:
        now = time.time()
        add = insert(bus_spill).returning(bus_spill.c.id)
        with self.db.write() as conn:
            ids = [
                int(conn.execute(add.values(payload=t, created_at=now)).scalar_one()) for t in texts
            ]
            if now - self._last_prune > SPILL_KEEP / 10:
                self._last_prune = now
                conn.execute(delete(bus_spill).where(bus_spill.c.created_at < now - SPILL_KEEP))
        return ids

    async def _consume(self) -> None:
        while True:
            payload = await self._incoming.get()
            try:
                await self._received(payload)
            except Exception:
                log.exception("a live event from another node was not handled")

    async def _received(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("a malformed live event notification was ignored")
            return
        origin = str(message.get("o", ""))
        if origin == self.node:
            return  # our own, published here already
        if "r" in message:
            text = await asyncio.to_thread(self._read_spilled, int(message["r"]))
            if text is not None:
                self.received += 1
                self.bus.publish(_decode(json.loads(text), origin))
            return
        for item in message.get("e", ()):
            self.received += 1
            self.bus.publish(_decode(item, origin))

    def _read_spilled(self, ref: int) -> str | None:
        with self.db.read() as conn:
            found = conn.execute(
                select(bus_spill.c.payload).where(bus_spill.c.id == ref)
            ).scalar_one_or_none()
        return str(found) if found is not None else None
