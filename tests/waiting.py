"""Waiting for asynchronous outcomes in tests: poll a condition, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(cond: Callable[[], bool], within: float = 10.0, step: float = 0.01) -> None:
    """Return once `cond()` is true; fail the test after `within` seconds."""
    async with asyncio.timeout(within):
        while not cond():
            await asyncio.sleep(step)
