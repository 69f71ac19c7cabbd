"""Initial sparse sync: every contact, group and chat, then the newest N messages of each.

Progress follows the `sync_chats` contract (DESIGN.md section 7): first an event with
`currentChat: 0`, then per chat one when the chat is saved and one when its messages
are saved. A chat whose history fails is recorded in its sync state and reported;
the other chats go on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from wasync.domain import events as ev
from wasync.domain.batch import Batch
from wasync.domain.models import (
    Chat,
    ChatFailure,
    ChatKind,
    Group,
    Message,
    SyncProgress,
    SyncReport,
)
from wasync.engines.base import Engine, EngineError, changes_of, reached_start
from wasync.store.db import Database
from wasync.store.identities import prepare, resolve
from wasync.store.writes import WriteResult, mark_chat_error, mark_fully_synced, write_batch
from wasync.sync.commit import WriteFn, commit_batch
from wasync.sync.hooks import Hooks, run_after_write, run_before_write

log = logging.getLogger(__name__)

ProgressListener = Callable[[SyncProgress], Awaitable[None] | None]
DEFAULT_LIMIT_PER_CHAT = 20
# History requests in flight at once; their results are still saved in chat order.
PREFETCH = 4


async def _emit(listener: ProgressListener | None, progress: SyncProgress) -> None:
    if listener is None:
        return
    out = listener(progress)
    if inspect.isawaitable(out):
        await out


async def initial_sync(
    engine: Engine,
    db: Database,
    session_id: int,
    session_name: str,
    *,
    limit_per_chat: int = DEFAULT_LIMIT_PER_CHAT,
    on_progress: ProgressListener | None = None,
    hooks: Hooks = (),
    write: WriteFn | None = None,
) -> SyncReport:
    if limit_per_chat < 0:
        raise ValueError("limit_per_chat must be 0 or more")
    started = time.monotonic()
    caps = engine.capabilities
    contacts = await engine.list_contacts() if caps.list_contacts else []
    groups = await engine.list_groups() if caps.list_groups else []
    chats = await engine.list_chats() if caps.list_chats else []
    chats = _with_group_chats(chats, groups)

    directory = Batch()
    for c in chats:
        directory.add(ev.ChatUpserted(c))
    directory.add(ev.ContactsUpserted(tuple(contacts)))
    for g in groups:
        directory.add(ev.GroupUpserted(g))
    write = write or db.write
    await asyncio.to_thread(commit_batch, db, session_id, directory, hooks, write)

    report = SyncReport(chats=len(chats), contacts=len(contacts), groups=len(groups))
    n = len(chats)
    await _emit(on_progress, SyncProgress(session_name, n, 0, messages_synced=0))
    # Real engines get their first history pushed by the phone (HistoryBatch events):
    # only an engine that can ask for a chat's newest messages fetches them here.
    fetch_history = caps.newest_history and limit_per_chat > 0
    pending: dict[int, asyncio.Task[list[Message]]] = {}

    def prefetch(upto: int) -> None:
        for j in range(upto, min(upto + PREFETCH, n)):
            if j not in pending:
                pending[j] = asyncio.create_task(
                    engine.request_history(chats[j].jid, None, limit_per_chat)
                )

    try:
        for i, chat in enumerate(chats):
            await _emit(on_progress, SyncProgress(session_name, n, i + 1, chat.jid, 0))
            if not fetch_history:
                continue
            prefetch(i)
            try:
                msgs = await pending.pop(i)
            except EngineError as exc:
                log.warning("history of %s failed: %s", chat.jid, exc)
                report.failed_chats.append(ChatFailure(chat.jid, str(exc)))
                await asyncio.to_thread(_record_error, write, session_id, chat.jid, str(exc))
                continue
            _, written = await asyncio.to_thread(
                save_history_page,
                db,
                session_id,
                chat.jid,
                msgs,
                reached_start(msgs, limit_per_chat),
                hooks,
                changes_of(msgs),
                write,
            )
            report.messages += len(msgs)
            report.new_messages += written.new_messages or 0
            await _emit(on_progress, SyncProgress(session_name, n, i + 1, chat.jid, len(msgs)))
    finally:
        for task in pending.values():
            task.cancel()
        await asyncio.gather(*pending.values(), return_exceptions=True)
    report.seconds = time.monotonic() - started
    return report


def _with_group_chats(chats: list[Chat], groups: list[Group]) -> list[Chat]:
    """Every group is a chat, even when the engine's chat list forgot it."""
    known = {c.jid for c in chats}
    out = list(chats)
    for g in groups:
        if g.jid not in known:
            out.append(Chat(jid=g.jid, kind=ChatKind.GROUP, name=g.name))
            known.add(g.jid)
    return out


def save_history_page(
    db: Database,
    session_id: int,
    chat_jid: str,
    msgs: list[Message],
    reached_start: bool,
    hooks: Hooks = (),
    changes: Iterable[ev.Event] = (),
    write: WriteFn | None = None,
) -> tuple[Batch, WriteResult]:
    """Commit one page of a chat's history, clear its error, mark it complete if so.

    `changes` (the edits, deletes and reactions the answer carried) go in the same
    transaction: a crash keeps both or neither, and the page is asked for again.
    """
    batch = Batch()
    for m in msgs:
        batch.add(ev.MessageReceived(m))
    for change in changes:
        batch.add(change)
    now = int(time.time())
    with (write or db.write)() as conn:
        prepare(conn, session_id, batch, now)
        chat_jid = resolve(conn, session_id, chat_jid)[0]
        befores = run_before_write(conn, session_id, batch, hooks)
        result = write_batch(conn, session_id, batch, now)
        run_after_write(conn, session_id, batch, result, hooks, befores)
        mark_chat_error(conn, session_id, chat_jid, None, now)
        if reached_start:
            # The engine reached the first message of the chat (base.reached_start).
            mark_fully_synced(conn, session_id, chat_jid, now)
    return batch, result


def _record_error(write: WriteFn, session_id: int, chat_jid: str, error: str) -> None:
    with write() as conn:
        mark_chat_error(conn, session_id, chat_jid, error, int(time.time()))
