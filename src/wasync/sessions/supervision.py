"""Connection supervision: back-off, bounded waits, and a gate that pauses work offline.

- `Backoff` says how long to wait before the next attempt (exponential, capped,
  jittered so many sessions do not reconnect in lock-step).
- `ConnectionGate` is open while the link is up; engine calls wait at the gate, so a
  `Disconnected` in the middle of a long sync pauses it, and the next `Connected`
  resumes it, instead of failing every remaining call.
- `keep_connected` retries a failing `connect()` with back-off until it succeeds, the
  session is found logged out (never retried), or it is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wasync.engines.base import LoggedOutError, NotConnected, TransientEngineError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Backoff:
    initial: float = 2.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.2  # +/- this fraction
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        spread = base * self.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))

    def reset(self) -> None:
        self.attempts = 0


class ConnectionGate:
    """Open while connected. `closed_reason` says why it is shut for good."""

    def __init__(self) -> None:
        self._up = asyncio.Event()
        self._changed = asyncio.Event()
        self.closed_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self._up.is_set()

    def open(self) -> None:
        self._up.set()
        self._pulse()

    def shut(self) -> None:
        self._up.clear()
        self._pulse()

    def close_for_good(self, reason: str) -> None:
        self.closed_reason = reason
        self.shut()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_open(self, what: str, patience: float) -> None:
        """Return once connected; raise if the session is gone or `patience` s pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while not self._up.is_set():
            if self.closed_reason is not None:
                raise LoggedOutError(f"cannot {what}: {self.closed_reason}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotConnected(
                    f"cannot {what}: not connected to WhatsApp (waited {patience:g} s for "
                    "the connection to come back)"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def keep_connected(
    connect: Callable[[], Awaitable[None]],
    backoff: Backoff,
    stop: asyncio.Event,
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> bool:
    """Call `connect` until it succeeds (True) or `stop` is set (False).

    Transient failures are retried after `backoff.next_delay()`; LoggedOutError and
    any other error propagate, because retrying them would loop for nothing.
    """
    while not stop.is_set():
        try:
            await connect()
        except TransientEngineError as exc:
            delay = backoff.next_delay()
            log.warning("connect failed (%s); retrying in %.0f s", exc, delay)
            if on_retry is not None:
                on_retry(exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            continue
        backoff.reset()
        return True
    return False
