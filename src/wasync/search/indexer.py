"""Keep SQLite's search index in step with the messages, in the background.

New messages are indexed by id above a high-water mark rather than by a trigger (see
store/search.py for why and what it measured), so something must call the indexer:
this service does, about once a second, in `wasync serve`; commands that write call
`catch_up` before they end. Each step is its own short write transaction, so ingestion
never waits long behind the indexer. On PostgreSQL there is nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from wasync.store import search
from wasync.store.db import Database

if TYPE_CHECKING:
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)

EVERY_SECONDS = 1.0


def step(db: Database) -> int:
    with db.write() as conn:
        return search.index_pending(conn)


def catch_up(db: Database) -> int:
    """Index everything pending, a batch per transaction; how many messages it took."""
    if not db.is_sqlite:
        return 0
    total = 0
    while done := step(db):
        total += done
    return total


class SearchIndexer:
    """The runtime service: a task that indexes what is pending every second."""

    def __init__(self, every: float = EVERY_SECONDS) -> None:
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self._db: Database | None = None

    async def start(self, runtime: Runtime) -> None:
        if not runtime.db.is_sqlite:
            return
        self._db = runtime.db
        self._task = asyncio.create_task(self._run(runtime.db), name="search-indexer")

    async def _run(self, db: Database) -> None:
        while True:
            try:
                await asyncio.to_thread(catch_up, db)
            except Exception:
                # A failed step leaves the mark where it was: the next one retries.
                log.exception("indexing messages for search failed")
            await asyncio.sleep(self.every)

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


def install(runtime: Runtime) -> SearchIndexer:
    indexer = SearchIndexer()
    runtime.add_service(indexer)
    return indexer
