"""Queue depth over time: a small in-memory sampler of queued and running jobs.

The jobs table keeps when a job finished, so finished-per-minute series come from it;
how deep a queue was a minute ago it cannot tell. This service counts pending jobs by
kind every `interval` seconds and keeps the last `keep` seconds of samples (lost on
restart: the dashboard's chart starts again).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wasync.jobs import queries

if TYPE_CHECKING:
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DepthSample:
    at: float
    queued: dict[str, int]  # by kind
    running: dict[str, int]


class QueueDepth:
    """A runtime service; `samples()` is read by the queues dashboard."""

    def __init__(self, interval: float = 10.0, keep: float = 3600.0) -> None:
        self.interval = interval
        self._samples: collections.deque[DepthSample] = collections.deque(
            maxlen=int(keep // interval) + 1
        )
        self._task: asyncio.Task[None] | None = None
        self._runtime: Runtime | None = None

    def samples(self, since: float = 0.0) -> list[DepthSample]:
        return [s for s in self._samples if s.at >= since]

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

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a missed sample is a gap in a chart, no more
                log.warning("queue depth sample failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._task = asyncio.create_task(self._loop(), name="queue-depth")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def session_added(self, handle: SessionHandle) -> None:
        pass

    async def session_removed(self, handle: SessionHandle) -> None:
        pass


def queue_depth(runtime: Runtime) -> QueueDepth | None:
    return next((s for s in runtime.services if isinstance(s, QueueDepth)), None)
