"""Running one session from a command (`wasync sync`, `history`, `pair`, `avatar-job`).

A command runs its session the way a server does: it holds it first (so it never runs
next to a `wasync serve` or another command that has it: `SessionHeld` says who does),
ingests through the same writer, runs jobs through the same runner, and gives the
session back when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from wasync.config import Settings
from wasync.engines.base import Engine
from wasync.jobs.queries import process_owner
from wasync.runtime import Runtime, SessionHandle
from wasync.search import catch_up
from wasync.sessions.ownership import describe_process
from wasync.store.db import Database


@asynccontextmanager
async def hosted_session(
    settings: Settings,
    db: Database,
    name: str,
    engine: Engine,
    *,
    engine_name: str,
    command: str,
    install: Callable[[Runtime], object] | None = None,
    engine_options: dict[str, Any] | None = None,
) -> AsyncIterator[SessionHandle]:
    """Hold, start and yield session `name`; stop it and give it back on the way out.

    The runtime closes `db` when it stops: read what the command reports inside.
    `engine_options` are stored with a session this makes (or one that had none).
    """
    runtime = Runtime(
        settings,
        db=db,
        holder=process_owner("cli"),
        holder_detail=describe_process(f"wasync {command}"),
    )
    if install is not None:
        install(runtime)
    await runtime.start()
    try:
        handle = await runtime.add_session(
            name, engine, engine_name=engine_name, engine_options=engine_options
        )
        yield handle
        # What the command wrote is searchable when it ends (no server may index it).
        await handle.sync.flush()
        await asyncio.to_thread(catch_up, db)
    finally:
        await runtime.stop()
