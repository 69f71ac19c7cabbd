"""Connection supervision: back-off, the pause gate, retrying connect, and giving up."""

from __future__ import annotations

import asyncio
import random

import pytest

from wasync.engines.base import LoggedOutError, NotConnected, TransientEngineError
from wasync.sessions.supervision import Backoff, ConnectionGate, keep_connected


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial=2, factor=2, maximum=30, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    bases = [2, 4, 8, 16, 30, 30, 30, 30]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    backoff.reset()
    assert backoff.next_delay() <= 2.4


async def test_gate_pauses_until_open_and_tells_why_when_closed() -> None:
    gate = ConnectionGate()
    waiter = asyncio.create_task(gate.wait_open("list groups", 60))
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.open()
    await waiter

    gate.shut()
    with pytest.raises(NotConnected, match="cannot list groups: not connected"):
        await gate.wait_open("list groups", 0.01)

    blocked = asyncio.create_task(gate.wait_open("fetch a picture", 60))
    await asyncio.sleep(0)
    gate.close_for_good("WhatsApp logged this device out")
    with pytest.raises(LoggedOutError, match="fetch a picture: WhatsApp logged this device out"):
        await blocked


async def test_keep_connected_retries_transient_failures_only() -> None:
    attempts: list[int] = []
    retries: list[float] = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientEngineError("no network")

    backoff = Backoff(initial=0.001, maximum=0.002)
    stop = asyncio.Event()
    assert await keep_connected(flaky, backoff, stop, on_retry=lambda e, d: retries.append(d))
    assert len(attempts) == 3 and len(retries) == 2
    assert backoff.attempts == 0  # reset after success

    async def logged_out() -> None:
        raise LoggedOutError("logged out")

    with pytest.raises(LoggedOutError):
        await keep_connected(logged_out, backoff, stop)

    async def never() -> None:
        raise TransientEngineError("still nothing")

    stop.set()
    assert await keep_connected(never, backoff, stop) is False
