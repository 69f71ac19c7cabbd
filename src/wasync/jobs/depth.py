"""Queue depth over time: a small in-memory sampler of queued and running jobs.

The jobs table keeps when a job finished, so finished-per-minute series come from it;
how deep a queue was a minute ago it cannot tell. This service counts pending jobs by
kind every `interval` seconds and keeps the last `keep` seconds of samples (lost on
restart: the dashboard's chart starts again).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wasync.jobs import queries
from wasync.periodic import Periodic

if TYPE_CHECKING:
    from wasync.runtime import Runtime


@dataclass(frozen=True, slots=True)
class DepthSample:
    at: float
    queued: dict[str, int]  # by kind
    running: dict[str, int]


class QueueDepth(Periodic):
    """A runtime service; `samples()` is read by the queues dashboard."""

    name = "queue-depth"

    def __init__(self, interval: float = 10.0, keep: float = 3600.0) -> None:
        super().__init__(interval)
        self.interval = interval
        self._samples: collections.deque[DepthSample] = collections.deque(
            maxlen=int(keep // interval) + 1
        )
        self._runtime: Runtime | None = None

    def samples(self, since: float = 0.0) -> list[DepthSample]:
        return [s for s in self._samples if s.at >= since]

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        await super().start(runtime)

    async def step(self, runtime: Runtime) -> None:
        await self.sample()

    async def sample(self) -> DepthSample:
        assert self._runtime is not None
        db = self._runtime.db

        def read() -> dict[str, dict[str, int]]:
            with db.read() as conn:
                return queries.counts(conn)

        counts = await asyncio.to_thread(read)
        sample = DepthSample(
            time.time(),
            {kind: states["queued"] for kind, states in counts.items()},
            {kind: states["running"] for kind, states in counts.items()},
        )
        self._samples.append(sample)
        return sample


def queue_depth(runtime: Runtime) -> QueueDepth | None:
    return next((s for s in runtime.services if isinstance(s, QueueDepth)), None)
