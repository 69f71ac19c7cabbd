"""Keep SQLite's search index in step with the messages, in the background.

New messages are indexed by id above a high-water mark rather than by a trigger (see
store/search.py for why and what it measured), so something must call the indexer:
this service does, about once a second, in `wasync serve`; commands that write call
`catch_up` before they end. Each step is its own short write transaction, so ingestion
never waits long behind the indexer. On PostgreSQL there is nothing to do.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wasync.periodic import Periodic
from wasync.store import search
from wasync.store.db import Database

if TYPE_CHECKING:
    from wasync.runtime import Runtime

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


class SearchIndexer(Periodic):
    """The runtime service: indexes what is pending every second (SQLite only)."""

    name = "search-indexer"

    def __init__(self, every: float = EVERY_SECONDS) -> None:
        super().__init__(every)

    def wanted(self, runtime: Runtime) -> bool:
        return runtime.db.is_sqlite

    async def step(self, runtime: Runtime) -> None:
        # A failed step leaves the mark where it was: the next one retries.
        await asyncio.to_thread(catch_up, runtime.db)


def install(runtime: Runtime) -> SearchIndexer:
    indexer = SearchIndexer()
    runtime.add_service(indexer)
    return indexer
