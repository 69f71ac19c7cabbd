"""Load older / load full history of one chat, as a durable, resumable job.

The job pages backwards from the chat's oldest stored message. Each page is committed
together with the job's progress (pages done, messages), and the next page's anchor
is read back from the chat's sync state, which that same transaction moved: a crash
at any point resumes at the first page not committed, never repeating or skipping
one. "Older" stops after its pages; "full" stops when the engine says the start of
the chat was reached (a phone says so per conversation, `base.reached_start`), and
the chat is then `fully_synced`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from wasync.domain.models import MessageAnchor, MessageKey
from wasync.engines.base import CapabilityMissing, reached_start
from wasync.history.context import HistoryContext, PageGroup, anchor_for, anchor_of, page_marks
from wasync.history.failures import as_engine_error, on_failure
from wasync.history.kinds import BACKFILL, NOT_AVAILABLE, PRIORITY
from wasync.history.progress import HistoryProgress
from wasync.jobs import queries as queue
from wasync.jobs.outcome import Defer, Done, Retry
from wasync.jobs.outcome import JobOutcome as Outcome
from wasync.jobs.queries import LeaseLost
from wasync.store import queries

QUEUED, ALREADY_QUEUED, FULLY_SYNCED = "queued", "already_queued", "fully_synced"
NO_ANCHOR = (
    "no message of this chat is stored yet to ask for older ones: the phone answers only "
    "requests anchored on a message (it sends a chat's recent history by itself)"
)


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    job_id: int | None
    status: str  # queued, already_queued or fully_synced

    def as_payload(self) -> dict[str, object]:
        return {"jobId": self.job_id, "status": self.status}


def request_backfill(
    conn: Connection,
    session_id: int,
    chat_jid: str,
    *,
    full: bool,
    pages: int = 1,
    max_attempts: int = 8,
    now: float | None = None,
) -> BackfillRequest:
    """Queue (or widen) the backfill of a chat. Idempotent: asking twice is one job.

    A pending "older" job asked again keeps at least `pages` more pages to go; asked
    for the full history, it becomes a full one.
    """
    if pages < 1:
        raise ValueError("pages must be at least 1")
    now = time.time() if now is None else now
    state = queries.get_sync_state(conn, session_id, chat_jid)
    if state is not None and state.fully_synced:
        return BackfillRequest(None, FULLY_SYNCED)
    payload: dict[str, Any] = {
        "chat": chat_jid,
        "mode": "full" if full else "older",
        "pages": None if full else pages,
        "done": 0,
        "messages": 0,
    }
    for _ in range(3):  # a pending job may finish between our two statements
        job_id = queue.enqueue(
            conn,
            BACKFILL,
            session_id=session_id,
            unique_key=chat_jid,
            payload=payload,
            priority=PRIORITY[BACKFILL],
            max_attempts=max_attempts,
            now=now,
        )
        if job_id is not None:
            return BackfillRequest(job_id, QUEUED)
        pending = queue.pending_job(conn, BACKFILL, session_id, chat_jid)
        if pending is None:
            continue
        wider = dict(pending.payload)
        if full:
            wider["mode"], wider["pages"] = "full", None
        elif wider.get("mode") == "older":
            wider["pages"] = max(int(wider.get("pages") or 1), int(wider.get("done", 0)) + pages)
        if wider != pending.payload and not queue.replace_payload(conn, pending.id, wider, now):
            continue  # it finished between our statements: queue a new one
        return BackfillRequest(pending.id, ALREADY_QUEUED)
    raise RuntimeError(f"could not queue the backfill of {chat_jid}")  # pragma: no cover


@dataclass(slots=True)
class _Plan:
    anchor: MessageAnchor | None
    fully_synced: bool


def _plan(ctx: HistoryContext, chat_jid: str) -> _Plan:
    """Where the next page starts: the chat's oldest stored message (or its newest)."""
    with ctx.db.read() as conn:
        state = queries.get_sync_state(conn, ctx.session_id, chat_jid)
        if state is None or state.oldest_message_id is None:
            return _Plan(None, bool(state and state.fully_synced))
        assert state.oldest_sender_jid is not None and state.oldest_timestamp is not None
        key = MessageKey(chat_jid, state.oldest_sender_jid, state.oldest_message_id)
        anchor = anchor_for(conn, ctx.session_id, key, state.oldest_timestamp)
        return _Plan(anchor, state.fully_synced)


def _pages_left(payload: dict[str, Any]) -> int | None:
    """Pages still to fetch ("older"), or None for all of them ("full")."""
    if payload.get("mode") == "full":
        return None
    return max(0, int(payload.get("pages") or 1) - int(payload.get("done", 0)))


async def run_backfill(ctx: HistoryContext, job: queue.Job) -> Outcome:
    chat = str(job.payload["chat"])
    payload: dict[str, Any] = dict(job.payload)
    mode = str(payload.get("mode", "older"))

    def progress(page: int, messages: int, fully: bool, done: bool = False) -> HistoryProgress:
        return HistoryProgress(chat, mode, job.id, page, messages, fully, done=done)

    def now_progress(fully: bool = False, done: bool = False) -> HistoryProgress:
        return progress(int(payload.get("done", 0)), int(payload.get("messages", 0)), fully, done)

    if not ctx.engine.capabilities.on_demand_history:
        exc = CapabilityMissing(NOT_AVAILABLE)
        return await on_failure(ctx, job, now_progress(), exc, progressed=False)
    # A chat asked for by a person's number may live under their LID by now.
    chat = await asyncio.to_thread(ctx.canonical, chat)
    plan = await asyncio.to_thread(_plan, ctx, chat)
    if plan.anchor is None and not plan.fully_synced and not ctx.engine.capabilities.newest_history:
        exc = CapabilityMissing(NO_ANCHOR)
        return await on_failure(ctx, job, now_progress(), exc, progressed=False)
    if plan.fully_synced or _pages_left(payload) == 0:
        outcome = await _done_unless_widened(ctx, job.id, plan.fully_synced)
        if isinstance(outcome, Done):
            await ctx.emit(now_progress(plan.fully_synced, done=True))
        return outcome
    group = PageGroup(ctx, job.id, chat)
    count = ctx.options.page_size
    progressed = finished = False

    async def commit() -> None:
        nonlocal payload, progressed, finished
        sizes = [len(page) for page in group.pages]
        payload = await group.commit(plan.fully_synced)
        progressed = True
        left = _pages_left(payload)
        finished = plan.fully_synced or left == 0
        marks = page_marks(payload, sizes)
        for i, (page, messages) in enumerate(marks):
            last = i == len(marks) - 1
            await ctx.emit(progress(page, messages, last and plan.fully_synced, last and finished))

    try:
        until = time.monotonic() + ctx.options.slice_seconds
        while time.monotonic() < until:
            left = _pages_left(payload)
            if left is not None and len(group.pages) >= left:
                break  # the pages in hand complete the target
            try:
                page = await ctx.engine.request_history(chat, plan.anchor, count)
            except Exception as caught:
                error = as_engine_error(caught)
                if group.pages:
                    await commit()
                return await on_failure(ctx, job, now_progress(), error, progressed=progressed)
            group.add(page)
            plan = _Plan(anchor_of(page[-1]) if page else plan.anchor, reached_start(page, count))
            if plan.fully_synced:
                break
            if group.due:
                await commit()
                if finished:
                    return await _done_unless_widened(ctx, job.id, plan.fully_synced)
        if group.pages:
            await commit()
    except LeaseLost:
        return Retry("lost the lease to another worker")  # recorded only if still ours
    if finished:
        return await _done_unless_widened(ctx, job.id, plan.fully_synced)
    return Defer(time.time())  # more to do: back in the queue


async def _done_unless_widened(ctx: HistoryContext, job_id: int, fully_synced: bool) -> Outcome:
    """Mark the job done, in one transaction with a last look at its payload.

    A request may widen the job (more pages, or the full history) while it runs:
    completing it blindly would accept that request and then drop it. The payload is
    read locked and the job completed in the same transaction, and a request that
    comes after finds the job done and queues a new one (`replace_payload`).
    """

    def complete() -> bool:
        with ctx.writing() as conn:
            payload = queue.owned_payload(conn, job_id, ctx.owner)
            if not fully_synced and _pages_left(payload) != 0:
                return False  # widened: more to do
            return queue.complete(conn, job_id, ctx.owner)

    try:
        finished = await asyncio.to_thread(complete)
    except LeaseLost:
        return Retry("lost the lease to another worker")
    return Done() if finished else Defer(time.time())
