"""Gap fill after downtime: find the chats that may have holes, then close each one.

The scan (one job per reconnect) runs once the offline replay has landed. A chat is
filled when there is evidence it moved since its watermark: the engine's chat list
shows a newer message, or newer messages reached the mirror after the reconnect.
Chats with nothing stored that moved while we were away are filled back to the
session's watermark time. Other open gaps are empty, and closed.

The fill (one job per chat) pages back from the chat's newest message until a page
reaches the watermark (or the start of the chat). Each page is committed together
with the new fill point, so a crash resumes below the last committed page.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import Connection

from wasync.domain.batch import Batch
from wasync.domain.models import Message, MessageKey
from wasync.engines import base
from wasync.engines.base import CapabilityMissing, EngineError, NotConnected
from wasync.history import gaps
from wasync.history.context import HistoryContext, PageGroup, anchor_for, anchor_of, page_marks
from wasync.history.failures import as_engine_error, on_failure
from wasync.history.kinds import GAP_FILL, NOT_AVAILABLE, PRIORITY
from wasync.history.progress import HistoryProgress
from wasync.jobs import queries as queue
from wasync.jobs.outcome import Defer, Done, Retry
from wasync.jobs.outcome import JobOutcome as Outcome
from wasync.jobs.queries import LeaseLost
from wasync.store import identities, queries
from wasync.store.identities import canonical
from wasync.store.writes import WriteResult, mark_chat_error
from wasync.sync.hooks import TransactionHook

_LOST = (
    f"{NOT_AVAILABLE}: newer messages exist on WhatsApp than the offline replay "
    "brought, and cannot be fetched"
)


async def run_gap_scan(ctx: HistoryContext, job: queue.Job) -> Outcome:
    replay = ctx.replay
    if replay is not None and replay.replaying(ctx.session_id, ctx.options.replay_patience):
        return Defer(time.time() + 0.5)
    caps = ctx.engine.capabilities
    newest: dict[str, int | None] | None = None
    if caps.list_chats:
        try:
            newest = {c.jid: c.last_message_at for c in await ctx.engine.list_chats()}
        except NotConnected:
            return Defer(time.time() + ctx.options.retry_delay, "waiting for the connection")
        except EngineError as exc:
            return Retry(str(exc), permanent=not exc.transient)
    floor = job.payload.get("floor")
    await asyncio.to_thread(
        _plan_fills,
        ctx,
        job.id,
        newest,
        int(floor) if floor is not None else None,
        caps.on_demand_history,
    )
    return Done()


def fill_key(chat_jid: str, scan_id: int) -> str:
    """One fill job per chat and scan: a fill still running from an earlier scan may
    have passed the new hole already, so a later scan always queues its own."""
    return f"{chat_jid}#{scan_id}"


def _plan_fills(
    ctx: HistoryContext,
    scan_id: int,
    newest: dict[str, int | None] | None,
    floor: int | None,
    can_fill: bool,
) -> None:
    sid = ctx.session_id
    now = int(time.time())
    with ctx.writing() as conn:
        # Shared: no pair is learned (and no chat merged) while the chat list is read
        # against the gaps; taken before the rows, as every batch writer takes it.
        identities.lock(conn, sid, exclusive=False)
        if newest is not None:
            # The engine lists a person's chat in either form: compare by the mirror's key.
            keys = identities.canonical_keys(conn, sid, newest)
            by_key: dict[str, int | None] = {}
            for jid, last in newest.items():
                key = keys[jid]
                by_key[key] = last if by_key.get(key) is None else max(by_key[key] or 0, last or 0)
            newest = by_key
        gaps.lock_rows(conn, sid)
        fill: list[str] = []
        empty: list[str] = []
        for gap in gaps.open_gap_list(conn, sid):
            network = newest.get(gap.chat_jid) if newest is not None else None
            since = gap.since_timestamp
            if not (_later(network, since) or _later(gap.newest_timestamp, since)):
                empty.append(gap.chat_jid)
            elif can_fill:
                fill.append(gap.chat_jid)
            elif _later(network, gap.newest_timestamp or 0):
                # The replay did not bring the chat's newest message: a known loss.
                mark_chat_error(conn, sid, gap.chat_jid, _LOST, now)
                gaps.set_status(conn, sid, [gap.chat_jid], gaps.FAILED)
            else:
                empty.append(gap.chat_jid)
        gaps.close(conn, sid, empty)
        if can_fill and floor is not None:
            new = gaps.arrived_after(conn, sid, floor)
            if newest is not None:
                stored = gaps.chats_with_messages(conn, sid)
                new += [j for j, last in newest.items() if _later(last, floor) and j not in stored]
            for jid in new:
                if jid not in fill:
                    gaps.start_gap(conn, sid, jid, floor, now)
                    fill.append(jid)
        gaps.set_status(conn, sid, fill, gaps.FILLING)
        queue.enqueue_many(
            conn,
            GAP_FILL,
            session_id=sid,
            keys_and_payloads=[
                (fill_key(jid, scan_id), {"chat": jid, "done": 0, "messages": 0}) for jid in fill
            ],
            priority=PRIORITY[GAP_FILL],
            max_attempts=ctx.options.max_attempts,
        )


def _later(ts: int | None, than: int | None) -> bool:
    return ts is not None and than is not None and ts > than


def _read(ctx: HistoryContext, chat: str) -> tuple[gaps.Gap | None, Any]:
    with ctx.db.read() as conn:
        gap = gaps.read_gap(conn, ctx.session_id, canonical(conn, ctx.session_id, chat))
        if gap is None:
            return gap, None
        if gap.until_key is not None and gap.until_timestamp is not None:
            return gap, anchor_for(conn, ctx.session_id, gap.until_key, gap.until_timestamp)
        if ctx.engine.capabilities.newest_history:
            return gap, None  # from the chat's newest message on the network
        # A phone needs an anchor: the newest message the mirror holds (the replay
        # brought it), and the hole lies below it.
        state = queries.get_sync_state(conn, ctx.session_id, chat)
        if state is None or state.newest_message_id is None or state.newest_sender_jid is None:
            return gap, None
        key = MessageKey(chat, state.newest_sender_jid, state.newest_message_id)
        return gap, anchor_for(conn, ctx.session_id, key, state.newest_timestamp or 0)


def _move_gap(
    gap: gaps.Gap, oldest: Message | None, closes: bool, moved: list[bool]
) -> TransactionHook:
    """Move (or close) the gap in the transaction of the pages that got it there."""

    def hook(conn: Connection, session_id: int, batch: Batch, result: WriteResult) -> None:
        moved.append(gaps.advance(conn, session_id, gap, oldest, closed=closes))

    return hook


async def run_gap_fill(ctx: HistoryContext, job: queue.Job) -> Outcome:
    chat = str(job.payload["chat"])
    payload: dict[str, Any] = dict(job.payload)

    def progress(page: int, messages: int, fully: bool, done: bool = False) -> HistoryProgress:
        return HistoryProgress(chat, "gap", job.id, page, messages, fully, done=done)

    def now_progress() -> HistoryProgress:
        return progress(int(payload.get("done", 0)), int(payload.get("messages", 0)), False)

    if not ctx.engine.capabilities.on_demand_history:
        exc = CapabilityMissing(NOT_AVAILABLE)
        return await on_failure(ctx, job, now_progress(), exc, progressed=False)
    # A chat asked for by a person's number may live under their LID by now (a merge
    # moves its gap there too).
    chat = await asyncio.to_thread(ctx.canonical, chat)
    group = PageGroup(ctx, job.id, chat)
    count = ctx.options.page_size
    progressed = False
    gap, anchor = await asyncio.to_thread(_read, ctx, chat)
    closes = reached_start = False

    async def commit() -> bool:
        """Commit the pages in hand; True when the gap is closed."""
        nonlocal payload, progressed, gap, anchor
        assert gap is not None
        sizes = [len(page) for page in group.pages]
        oldest = next((page[-1] for page in reversed(group.pages) if page), None)
        moved: list[bool] = []
        payload = await group.commit(reached_start, _move_gap(gap, oldest, closes, moved))
        progressed = True
        closed = closes and moved[0]
        marks = page_marks(payload, sizes)
        for i, (page, messages) in enumerate(marks):
            last = i == len(marks) - 1
            await ctx.emit(progress(page, messages, last and reached_start, last and closed))
        if not moved[0] or not closed:
            # Re-read: a reconnect may have reset the fill point meanwhile.
            gap, anchor = await asyncio.to_thread(_read, ctx, chat)
        return closed

    try:
        until = time.monotonic() + ctx.options.slice_seconds
        while time.monotonic() < until:
            if gap is None:
                return Done()  # closed (before a crash, or found empty)
            try:
                page = await ctx.engine.request_history(chat, anchor, count)
            except Exception as caught:
                error = as_engine_error(caught)
                if group.pages:
                    await commit()
                return await on_failure(ctx, job, now_progress(), error, progressed=progressed)
            group.add(page)
            reached_start = base.reached_start(page, count)
            closes = reached_start or gap.met_by(page)
            if page:
                anchor = anchor_of(page[-1])
            if (closes or group.due) and await commit():
                return Done()
        if group.pages and await commit():
            return Done()
    except LeaseLost:
        return Retry("lost the lease to another worker")
    return Defer(time.time())
