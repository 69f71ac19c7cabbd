"""One session's sync outside a runtime: a writer of its own, for tests of the sync layer."""

from __future__ import annotations

from typing import Any

from wasync.domain.models import SyncReport
from wasync.engines.base import Engine
from wasync.store.db import Database
from wasync.store.sessions import ensure_session
from wasync.sync.session import SessionSync
from wasync.sync.writer import GroupWriter, SessionStream


class Standalone:
    """`SessionSync` with the writer a runtime would give it."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        name: str = "default",
        *,
        engine_name: str = "simulator",
        max_delay: float = 0.01,
        **options: Any,
    ) -> None:
        self.db = db
        self.engine = engine
        self.writer = GroupWriter(db, max_delay=max_delay)
        with db.write() as conn:
            self.session_id = ensure_session(conn, name, engine_name)
        self.stream: SessionStream = self.writer.attach(self.session_id)
        self.sync = SessionSync(
            db,
            engine,
            name,
            session_id=self.session_id,
            stream=self.stream,
            engine_name=engine_name,
            **options,
        )

    async def start(self) -> None:
        await self.sync.start()

    async def initial_sync(self, limit_per_chat: int | None = None) -> SyncReport:
        return await self.sync.initial_sync(limit_per_chat)

    async def flush(self) -> None:
        await self.sync.flush()

    async def stop(self) -> None:
        await self.sync.stop()
        await self.writer.close()
