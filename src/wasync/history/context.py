"""What a history job handler works with: one session's engine, store and listeners,
and the group commit of fetched pages."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from wasync.domain.batch import Batch
from wasync.domain.models import Message, MessageAnchor, MessageKey
from wasync.engines.base import Engine, changes_of
from wasync.history.hook import ReplayTracker
from wasync.history.options import HistoryOptions
from wasync.history.progress import HistoryProgress, ProgressListener, emit
from wasync.jobs import queries as queue
from wasync.store.db import Database
from wasync.store.identities import canonical
from wasync.store.schema import messages
from wasync.store.writes import WriteResult
from wasync.sync.commit import WriteFn
from wasync.sync.hooks import Hooks, TransactionHook
from wasync.sync.initial import save_history_page


@dataclass(slots=True)
class HistoryContext:
    db: Database
    session_id: int
    session_name: str
    engine: Engine
    options: HistoryOptions
    owner: str  # the lease owner name of this worker's jobs
    hooks: Hooks = ()
    replay: ReplayTracker | None = None
    on_progress: ProgressListener | None = None
    # The session's (fenced) write transaction; db.write when none is given.
    write: WriteFn | None = None

    def writing(self) -> AbstractContextManager[Connection]:
        return (self.write or self.db.write)()

    def canonical(self, chat_jid: str) -> str:
        """The key a chat is kept under now (a person's LID once it is known)."""
        with self.db.read() as conn:
            return canonical(conn, self.session_id, chat_jid)

    async def emit(self, progress: HistoryProgress) -> None:
        await emit(self.on_progress, progress)


@dataclass(slots=True)
class PageGroup:
    """Pages fetched for one job and not committed yet.

    They are committed together, with the job's progress (pages done, messages) and
    the caller's own record, in one transaction that also checks the job is still
    ours (queue.LeaseLost otherwise): a crash loses only uncommitted pages, which
    the resumed job asks for again, so no page is ever skipped or counted twice.
    """

    ctx: HistoryContext
    job_id: int
    chat_jid: str
    pages: list[list[Message]] = field(default_factory=list)
    size: int = 0
    started: float = 0.0

    def add(self, page: list[Message]) -> None:
        if not self.pages:
            self.started = time.monotonic()
        self.pages.append(page)
        self.size += len(page)

    @property
    def due(self) -> bool:
        options = self.ctx.options
        return bool(self.pages) and (
            self.size >= options.group_messages
            or time.monotonic() - self.started >= options.group_seconds
        )

    async def commit(
        self, reached_start: bool, also: TransactionHook | None = None
    ) -> dict[str, Any]:
        """Commit the pages; returns the job's payload as stored after them."""
        ctx = self.ctx
        pages, self.pages, self.size = self.pages, [], 0
        stored: dict[str, Any] = {}

        def record(conn: Connection, session_id: int, batch: Batch, result: WriteResult) -> None:
            payload = queue.owned_payload(conn, self.job_id, ctx.owner)
            payload["done"] = int(payload.get("done", 0)) + len(pages)
            payload["messages"] = int(payload.get("messages", 0)) + sum(map(len, pages))
            queue.record_progress(conn, self.job_id, ctx.owner, payload, time.time())
            if also is not None:
                also(conn, session_id, batch, result)
            stored.update(payload)

        batch = [m for page in pages for m in page]
        await asyncio.to_thread(
            save_history_page,
            ctx.db,
            ctx.session_id,
            self.chat_jid,
            batch,
            reached_start,
            (*ctx.hooks, record),
            [change for page in pages for change in changes_of(page)],
            ctx.write,
        )
        return stored


def page_marks(payload: dict[str, Any], sizes: list[int]) -> list[tuple[int, int]]:
    """(page number, messages so far) after each of the pages just committed."""
    page = int(payload.get("done", 0)) - len(sizes)
    total = int(payload.get("messages", 0)) - sum(sizes)
    marks = []
    for size in sizes:
        page, total = page + 1, total + size
        marks.append((page, total))
    return marks


def anchor_for(conn: Connection, session_id: int, key: MessageKey, timestamp: int) -> MessageAnchor:
    """A stored message as the starting point of a history request (WhatsApp wants from_me)."""
    m = messages.c
    from_me = conn.execute(
        select(m.from_me).where(
            m.session_id == session_id,
            m.chat_jid == key.chat_jid,
            m.sender_jid == key.sender_jid,
            m.message_id == key.message_id,
        )
    ).scalar_one_or_none()
    return MessageAnchor(key, timestamp, bool(from_me))


def anchor_of(message: Message) -> MessageAnchor:
    return MessageAnchor(message.key, message.timestamp, message.from_me)
