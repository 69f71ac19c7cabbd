"""Group commit of live events: buffer, commit in a worker thread, then publish.

Events from a real engine are acked before we see them (at most once), so the path
to a committed row must be short: a batch is committed as soon as it holds
`max_batch` events or its first event is `max_delay` seconds old. While one batch
commits, the next one fills; `put()` waits only when the next one is full too, which
is the back-pressure that keeps memory bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from wasync.domain.batch import Batch
from wasync.domain.events import Event
from wasync.errors import StoreError
from wasync.store.db import Database
from wasync.store.writes import WriteResult
from wasync.sync.commit import commit_batch
from wasync.sync.hooks import Hooks

log = logging.getLogger(__name__)

CommitListener = Callable[[Batch, WriteResult], Awaitable[None]]


class BatchWriter:
    def __init__(
        self,
        db: Database,
        session_id: int,
        *,
        max_batch: int = 5000,
        max_delay: float = 0.1,
        on_commit: CommitListener | None = None,
        hooks: Hooks = (),
    ) -> None:
        self.db = db
        self.session_id = session_id
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.on_commit = on_commit
        self.hooks = tuple(hooks)
        self.retry_delay = 0.5
        self.max_retry_delay = 30.0
        self.store_errors = 0  # commits retried because the database was unavailable
        self.failing: str | None = None  # the error being retried now; None once a commit lands
        self.poisoned_events = 0  # events skipped because they could not be stored
        self.committed_events = 0
        self._batch = Batch()
        self._has_events = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"batch-writer-{self.session_id}")

    async def put(self, event: Event) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("the batch writer is closed")
        while len(self._batch) >= self.max_batch:
            self._room.clear()
            await self._room.wait()
        self._batch.add(event)
        self._idle.clear()
        self._has_events.set()
        if len(self._batch) >= self.max_batch:
            self._full.set()

    async def flush(self) -> None:
        """Wait until everything put so far is committed."""
        if self._error is not None:
            raise self._error
        if len(self._batch):
            self._full.set()
        await self._idle.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Commit what is buffered, then stop."""
        if self._task is None:
            return
        await self.flush()
        self._closed = True
        self._has_events.set()
        await self._task
        self._task = None

    async def _commit(self, batch: Batch) -> WriteResult:
        """Commit a batch; never give up on a database that is only unavailable.

        A StoreError (connection lost, database locked or down) keeps the batch and
        retries with back-off: nothing acked by the engine is dropped, and put()
        applies back-pressure meanwhile. Any other error is a bug or a poison event:
        the batch is then committed event by event, so that one bad event is logged
        and skipped instead of blocking, or losing, everything behind it.
        """
        delay = self.retry_delay
        while True:
            try:
                # Shield: a cancelled writer still finishes the commit it started.
                result = await asyncio.shield(
                    asyncio.to_thread(commit_batch, self.db, self.session_id, batch, self.hooks)
                )
                self.failing = None
                return result
            except StoreError as exc:
                self.store_errors += 1
                self.failing = str(exc)
                log.warning("commit failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            except Exception:
                log.exception("a batch of %d events failed; committing them one by one", len(batch))
                return await self._commit_each(batch)

    async def _commit_each(self, batch: Batch) -> WriteResult:
        merged = WriteResult()
        for event in batch.events:
            single = Batch()
            single.add(event)
            try:
                result = await asyncio.shield(
                    asyncio.to_thread(commit_batch, self.db, self.session_id, single, self.hooks)
                )
            except StoreError:
                raise
            except Exception:
                self.poisoned_events += 1
                log.exception("skipping an event that cannot be stored: %r", event)
                continue
            merged.messages += result.messages
            merged.chats_touched |= result.chats_touched
            merged.senders |= result.senders
        return merged

    async def _run(self) -> None:
        try:
            while True:
                await self._has_events.wait()
                if self._closed and not len(self._batch):
                    return
                if len(self._batch) < self.max_batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.max_delay)
                batch, self._batch = self._batch, Batch()
                self._full.clear()
                self._has_events.clear()
                self._room.set()
                if len(batch):
                    result = await self._commit(batch)
                    self.committed_events += len(batch)
                    if self.on_commit is not None:
                        try:
                            await self.on_commit(batch, result)
                        except Exception:
                            log.exception("a commit listener failed; ingestion continues")
                if not len(self._batch):
                    self._idle.set()
        except BaseException as exc:
            self._error = exc
            self._idle.set()
            self._room.set()
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("the batch writer stopped on an error")
            raise
