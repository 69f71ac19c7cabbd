"""One publisher per broker endpoint, kept open between calls, closed when not needed.

A publisher is made on an endpoint's first publish and kept (its connection is the
point of it). It is replaced when the endpoint's URL changes, closed when the
endpoint is removed (`retain`) or unused for a while (`close_idle`), and all are
closed on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from wasync.delivery.ssrf import InvalidURL
from wasync.delivery.streams import targets
from wasync.delivery.streams.amqp_publisher import AmqpPublisher
from wasync.delivery.streams.nats_publisher import NatsPublisher
from wasync.delivery.streams.publisher import (
    Envelope,
    Failed,
    Outgoing,
    Publisher,
    PublishResult,
    StreamSettings,
)
from wasync.delivery.streams.redis_publisher import RedisPublisher

log = logging.getLogger(__name__)

IDLE_CLOSE = 300.0  # seconds without a publish after which a connection is closed


def publisher_for(url: str, settings: StreamSettings) -> Publisher[Any]:
    """A publisher for a broker URL (InvalidURL if it is not a valid one)."""
    target = targets.parse(url)
    if isinstance(target, targets.NatsTarget):
        return NatsPublisher(url, target, settings)
    if isinstance(target, targets.AmqpTarget):
        return AmqpPublisher(url, target, settings)
    return RedisPublisher(url, target, settings)


class Publishers:
    def __init__(self, settings: StreamSettings, *, idle_close: float = IDLE_CLOSE) -> None:
        self.settings = settings
        self.idle_close = idle_close
        self._by_endpoint: dict[int, Publisher[Any]] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._by_endpoint)

    async def get(self, endpoint_id: int, url: str) -> Publisher[Any]:
        async with self._lock:
            found = self._by_endpoint.get(endpoint_id)
            if found is not None and found.url == url:
                return found
            publisher = publisher_for(url, self.settings)
            self._by_endpoint[endpoint_id] = publisher
        if found is not None:
            await found.close()  # the URL changed: the old connection goes
        return publisher

    async def publish(
        self, endpoint_id: int, url: str, envelopes: Sequence[Envelope | Outgoing]
    ) -> list[PublishResult]:
        """`publish_many` on the endpoint's publisher; a bad URL fails every envelope for good."""
        try:
            publisher = await self.get(endpoint_id, url)
        except InvalidURL as exc:
            return [Failed(f"bad broker URL: {exc}", permanent=True)] * len(envelopes)
        return await publisher.publish_many(envelopes)

    async def close(self, endpoint_id: int) -> None:
        async with self._lock:
            found = self._by_endpoint.pop(endpoint_id, None)
        if found is not None:
            await found.close()

    async def retain(self, endpoint_ids: Iterable[int]) -> None:
        """Close the publishers of endpoints not in `endpoint_ids` (removed ones)."""
        keep = set(endpoint_ids)
        for endpoint_id in [i for i in self._by_endpoint if i not in keep]:
            await self.close(endpoint_id)

    async def close_idle(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        idle = [i for i, p in self._by_endpoint.items() if now - p.last_used >= self.idle_close]
        for endpoint_id in idle:
            await self.close(endpoint_id)

    async def close_all(self) -> None:
        async with self._lock:
            found = list(self._by_endpoint.values())
            self._by_endpoint.clear()
        for publisher in found:
            await publisher.close()
