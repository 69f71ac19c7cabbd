"""Group commit of live events: one writer per process, for every session it runs.

Events from a real engine are acked before we see them (at most once), so the path
to a committed row must be short: a group is committed as soon as it holds
`max_batch` events or its first event is `max_delay` seconds old. Every session's
pending events go into the same transaction, and each statement runs once for all of
them (store/writes.py `write_batches`): a thousand sessions at one message a second
cost ten transactions a second, not a thousand.

What stays per session:
- order: a session's events are committed in the order they were put, group after
  group;
- back-pressure: while a group commits the next one fills; `put()` waits only when
  its session's next batch is full, which keeps memory bounded;
- failure: a poison event (one the store refuses) is isolated to its own session,
  and there to itself (committed event by event), without holding up the others;
- fencing: a session whose lease moved to another process (sessions/ownership.py)
  has its events refused, inside the same transaction that commits the others.

A database that is only unavailable (StoreError) keeps every batch and is retried
with back-off: nothing acked by an engine is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.errors import StoreError
from wasync.sessions.ownership import Fenced, Lease, check_leases
from wasync.store.db import Database
from wasync.store.identities import prepare
from wasync.store.writes import WriteResult, write_batches
from wasync.sync.commit import record_lifecycle
from wasync.sync.hooks import Hooks, run_after_write, run_before_write
from wasync.sync.lag import LagHistogram

log = logging.getLogger(__name__)

CommitListener = Callable[[Batch, WriteResult], Awaitable[None]]
FencedListener = Callable[[int], None]


@dataclass(eq=False, slots=True)
class SessionStream:
    """One session's way into the writer (`GroupWriter.attach`)."""

    writer: GroupWriter
    session_id: int
    lease: Lease | None
    on_commit: CommitListener | None
    on_fenced: FencedListener | None
    batch: Batch = field(default_factory=Batch)
    in_flight: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    closed: bool = False
    committed_events: int = 0
    poisoned_events: int = 0
    since: float = 0.0  # when the first event of `batch` was put (time.monotonic)

    def __post_init__(self) -> None:
        self.idle.set()
        self.room.set()

    async def put(self, event: ev.Event) -> None:
        if self.error is not None:
            raise self.error
        if self.closed:
            raise RuntimeError("this session's writer is closed")
        writer = self.writer
        if len(self.batch) >= writer.max_batch:  # the only case that waits
            await writer._admit(self)
        if not len(self.batch):
            self.since = time.monotonic()
        self.batch.add(event)
        self.idle.clear()
        writer._added(self)

    async def flush(self) -> None:
        """Wait until everything put so far is committed."""
        if self.error is not None:
            raise self.error
        if len(self.batch):
            self.writer._hurry()
        await self.idle.wait()
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        """Commit what is buffered, then detach."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            await self.flush()
        self.closed = True
        self.writer._detach(self)


class GroupWriter:
    def __init__(
        self,
        db: Database,
        *,
        hooks: Hooks = (),
        max_batch: int = 5000,
        max_delay: float = 0.1,
    ) -> None:
        self.db = db
        # The runtime's own list: features add their hooks after the writer exists.
        self.hooks = hooks
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.retry_delay = 0.5
        self.max_retry_delay = 30.0
        self.store_errors = 0  # group commits retried because the database was unavailable
        self.failing: str | None = None  # the error a commit is retried for; None: none
        self.groups = 0  # transactions committed
        self.committed_events = 0
        self.poisoned_events = 0
        self.lag = LagHistogram()  # put -> committed, per event
        self._streams: dict[int, SessionStream] = {}
        self._pending: dict[int, SessionStream] = {}  # streams with events not taken yet
        self._size = 0  # events pending in all streams
        self._first_at: float | None = None
        self._has_events = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # Sessions.

    def attach(
        self,
        session_id: int,
        *,
        lease: Lease | None = None,
        on_commit: CommitListener | None = None,
        on_fenced: FencedListener | None = None,
    ) -> SessionStream:
        old = self._streams.get(session_id)
        if old is not None and not old.closed:
            raise RuntimeError(f"session {session_id} is attached to the writer already")
        stream = SessionStream(self, session_id, lease, on_commit, on_fenced)
        self._streams[session_id] = stream
        self.start()
        return stream

    def stream(self, session_id: int) -> SessionStream | None:
        return self._streams.get(session_id)

    def _detach(self, stream: SessionStream) -> None:
        if self._streams.get(stream.session_id) is stream:
            del self._streams[stream.session_id]
        if self._pending.get(stream.session_id) is stream:
            del self._pending[stream.session_id]
            self._size -= len(stream.batch)
        stream.idle.set()
        stream.room.set()

    # Putting.

    async def _admit(self, stream: SessionStream) -> None:
        while len(stream.batch) >= self.max_batch:
            stream.room.clear()
            self._hurry()
            await stream.room.wait()
            if stream.error is not None:
                raise stream.error

    def _added(self, stream: SessionStream) -> None:
        self._pending[stream.session_id] = stream
        self._size += 1
        if self._first_at is None:
            self._first_at = time.monotonic()
            self._has_events.set()
        if self._size >= self.max_batch:
            self._urgent.set()

    def _hurry(self) -> None:
        self._urgent.set()

    # The loop.

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="group-writer")

    async def close(self) -> None:
        """Commit what is buffered, then stop."""
        for stream in list(self._streams.values()):
            await stream.close()
        self._closing = True
        self._has_events.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        try:
            while True:
                await self._has_events.wait()
                if self._closing and not self._pending:
                    return
                if self._size < self.max_batch and self._first_at is not None:
                    wait = self._first_at + self.max_delay - time.monotonic()
                    if wait > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._urgent.wait(), wait)
                self._urgent.clear()
                group = [(s, s.batch) for s in self._pending.values() if len(s.batch)]
                since = [s.since for s, _ in group]
                for stream, _ in group:
                    stream.batch = Batch()
                    stream.in_flight = True
                    stream.room.set()
                self._pending.clear()
                self._size = 0
                self._first_at = None
                self._has_events.clear()
                if group:
                    await self._commit(group)
                    done = time.monotonic()
                    for (_, batch), first in zip(group, since, strict=True):
                        self.lag.observe(done - first, len(batch))
                for stream, _ in group:
                    stream.in_flight = False
                    if not len(stream.batch):
                        stream.idle.set()
        except BaseException as exc:
            for stream in list(self._streams.values()):
                stream.error = exc
                stream.idle.set()
                stream.room.set()
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("the writer stopped on an error")
            raise

    async def _commit(self, group: list[tuple[SessionStream, Batch]]) -> None:
        """Commit a group; never give up on a database that is only unavailable.

        Any other error is a bug or a poison event: the sessions are then committed one
        by one, and a failing session event by event, so one bad event is logged and
        skipped instead of blocking, or losing, everything behind it.
        """
        delay = self.retry_delay
        while True:
            try:
                # Shield: a cancelled writer still finishes the commit it started.
                results, fenced = await asyncio.shield(asyncio.to_thread(self._write, group))
                self.failing = None
                break
            except StoreError as exc:
                self.store_errors += 1
                self.failing = str(exc)
                log.warning("commit failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            except Exception:
                if len(group) > 1:
                    log.warning("a group of %d sessions failed; committing each alone", len(group))
                    for item in group:
                        await self._commit([item])
                    return
                await self._commit_each(*group[0])
                return
        self.groups += 1
        for (stream, batch), result in zip(group, results, strict=True):
            if stream.session_id in fenced:
                self._fence(stream)
                continue
            await self._committed(stream, batch, result)

    async def _commit_each(self, stream: SessionStream, batch: Batch) -> None:
        merged = WriteResult()
        # What the failed group attempt merged was rolled back: the singles say it again.
        batch.merges = []
        for event in batch.events:
            single = Batch()
            single.add(event)
            try:
                results, fenced = await asyncio.shield(
                    asyncio.to_thread(self._write, [(stream, single)])
                )
            except StoreError:
                raise
            except Exception:
                stream.poisoned_events += 1
                self.poisoned_events += 1
                log.exception("skipping an event that cannot be stored: %r", event)
                continue
            if fenced:
                self._fence(stream)
                return
            result = results[0]
            batch.merges += single.merges
            batch.phones.update(single.phones)
            merged.messages += result.messages
            merged.chats_touched |= result.chats_touched
            merged.senders |= result.senders
        await self._committed(stream, batch, merged)

    async def _committed(self, stream: SessionStream, batch: Batch, result: WriteResult) -> None:
        stream.committed_events += len(batch)
        self.committed_events += len(batch)
        if stream.on_commit is not None:
            try:
                await stream.on_commit(batch, result)
            except Exception:
                log.exception("a commit listener failed; ingestion continues")

    def _fence(self, stream: SessionStream) -> None:
        log.warning(
            "session %s is held by another process now: its events were not committed",
            stream.session_id,
        )
        stream.error = Fenced(f"session {stream.session_id} moved to another process")
        stream.idle.set()
        stream.room.set()
        if stream.on_fenced is not None:
            stream.on_fenced(stream.session_id)

    def _write(
        self, group: list[tuple[SessionStream, Batch]]
    ) -> tuple[list[WriteResult], set[int]]:
        """One transaction for the whole group (runs in a worker thread)."""
        now = int(time.time())
        with self.db.write() as conn:
            fenced = check_leases(conn, [s.lease for s, _ in group if s.lease is not None])
            live = [(s, b) for s, b in group if s.session_id not in fenced]
            for stream, batch in live:
                prepare(conn, stream.session_id, batch, now)
            befores = [run_before_write(conn, s.session_id, b, self.hooks) for s, b in live]
            written = write_batches(conn, [(s.session_id, b) for s, b in live], now)
            for (stream, batch), result, before in zip(live, written, befores, strict=True):
                record_lifecycle(conn, stream.session_id, batch)
                run_after_write(conn, stream.session_id, batch, result, self.hooks, before)
        by_session = {s.session_id: r for (s, _), r in zip(live, written, strict=True)}
        results = [by_session.get(s.session_id, WriteResult()) for s, _ in group]
        return results, fenced
