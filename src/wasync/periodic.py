"""A runtime service that does one thing every few seconds, whatever the sessions do.

A failed step is logged and the next one runs on time: what these services do (a
chart's sample, an index catching up) is retried by simply running again.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)


class Periodic(abc.ABC):
    name: str = "periodic"

    def __init__(self, every: float) -> None:
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def wanted(self, runtime: Runtime) -> bool:
        """Whether this runtime needs the service at all."""
        return True

    @abc.abstractmethod
    async def step(self, runtime: Runtime) -> None: ...

    async def _loop(self, runtime: Runtime) -> None:
        while True:
            try:
                await self.step(runtime)
            except Exception:
                log.exception("%s: a step failed; trying again in %g s", self.name, self.every)
            await asyncio.sleep(self.every)

    async def start(self, runtime: Runtime) -> None:
        if self.wanted(runtime):
            self._task = asyncio.create_task(self._loop(runtime), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def session_added(self, handle: SessionHandle) -> None:  # noqa: B027 - no-op
        """Sessions coming and going change nothing here."""

    async def session_removed(self, handle: SessionHandle) -> None:  # noqa: B027 - no-op
        """Sessions coming and going change nothing here."""
