"""Like WhatsApp, the simulator drops the older of two connections of one account, across
processes (through the database they share), with the status the real engine reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from wasync.config import Settings
from wasync.domain.events import LoggedOut, SessionStatus
from wasync.engines.simulator import Network, SimulatorEngine
from wasync.engines.simulator.presence import DatabaseRegistry, Presence, presence_of
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.schema import sessions

from ..waiting import eventually


async def _events(engine: SimulatorEngine) -> list[object]:
    got: list[object] = []

    async def read() -> None:
        async for event in engine.events():
            got.append(event)

    asyncio.get_running_loop().create_task(read())
    return got


async def test_a_second_connection_of_an_account_replaces_the_first(db: Database) -> None:
    # Two processes' presences on one database: each has its own watcher.
    here, there = Presence(DatabaseRegistry(db)), Presence(DatabaseRegistry(db))
    older = SimulatorEngine(Network.from_scale("tiny", 1))
    newer = SimulatorEngine(Network.from_scale("tiny", 1))
    older.bind_presence(here, "acct")
    newer.bind_presence(there, "acct")
    seen = await _events(older)
    await older.connect()
    await newer.connect()
    # The status changes first; the event reaches the reader a moment later.
    await eventually(lambda: any(isinstance(e, LoggedOut) for e in seen), within=10)
    assert older.status is SessionStatus.REPLACED
    assert newer.status is SessionStatus.CONNECTED  # the newest connection stays
    gone = [e for e in seen if isinstance(e, LoggedOut)]
    assert gone[-1].status is SessionStatus.REPLACED
    assert "stream replaced" in gone[-1].reason
    # Another account is nobody's business.
    other = SimulatorEngine(Network.from_scale("tiny", 1))
    other.bind_presence(here, "other")
    await other.connect()
    for engine in (older, newer, other):
        await engine.close()


async def test_a_rogue_copy_of_a_running_session_knocks_it_off(db_url: str, tmp_path: Path) -> None:
    """A copy that bypasses the session lock (another machine with the same keys): the
    running session learns it was replaced and says so, as a real one would."""
    runtime = Runtime(Settings(data_dir=tmp_path, database_url=db_url))
    await runtime.start()
    try:
        await runtime.add_session(
            "x", SimulatorEngine(Network.from_scale("tiny", 1)), engine_name="simulator"
        )
        rogue = SimulatorEngine(Network.from_scale("tiny", 1))
        rogue.bind_presence(presence_of(runtime.db), "x")
        await rogue.connect()

        def status() -> str:
            with runtime.db.read() as conn:
                return str(conn.execute(select(sessions.c.status)).scalar_one())

        await eventually(lambda: status() == "replaced", within=10)
        await rogue.close()
    finally:
        await runtime.stop()
