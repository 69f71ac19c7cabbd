"""Waiting for asynchronous outcomes in tests: poll a condition, with a deadline."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(cond: Callable[[], bool], within: float = 10.0, step: float = 0.01) -> None:
    """Return once `cond()` is true; fail the test after `within` seconds."""
    async with asyncio.timeout(within):
        while not cond():
            await asyncio.sleep(step)


async def bounded(step: Awaitable[T], within: float, what: str) -> T:
    """Await `step`, failing after `within` seconds with the stack of every task of the
    loop: a hang then says where it hangs (the test timeout shows only threads)."""
    try:
        async with asyncio.timeout(within):
            return await step
    except TimeoutError:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=stacks)
        raise AssertionError(
            f"{what} took over {within} s; the tasks:\n{stacks.getvalue()}"
        ) from None
