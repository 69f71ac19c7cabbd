"""The runtime service: the history job kinds, a context per running session, and the
requests API.

`install(runtime)` (wasync.history) registers it with its connect hook. The API and
other features reach it with `history_service(runtime)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from wasync.bus import BusEvent
from wasync.domain.jid import to_jid
from wasync.engines.base import CapabilityMissing
from wasync.errors import DomainError
from wasync.history.backfill import BackfillRequest, request_backfill
from wasync.history.context import HistoryContext
from wasync.history.hook import ConnectHook, ReplayTracker
from wasync.history.jobs import history_kinds
from wasync.history.kinds import KINDS, NOT_AVAILABLE
from wasync.history.options import HistoryOptions
from wasync.history.progress import HistoryProgress
from wasync.history.view import chat_known, sync_state_view
from wasync.runtime import Runtime, SessionHandle
from wasync.store import queries
from wasync.store.identities import canonical
from wasync.store.sessions import get_session

log = logging.getLogger(__name__)


class ChatNotFound(DomainError):
    """The mirror has no such chat in this session (the API answers 404)."""


class HistoryService:
    def __init__(
        self, options: HistoryOptions | None = None, *, kinds: tuple[str, ...] = KINDS
    ) -> None:
        self.options = options or HistoryOptions()
        self.kinds = kinds
        self.replay = ReplayTracker()
        self.hook = ConnectHook(self.options, self.replay)
        self.contexts: dict[str, HistoryContext] = {}
        self._by_id: dict[int, HistoryContext] = {}
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the history service has not been started")
        return self._runtime

    # Service protocol.

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        for kind in history_kinds(self.kinds, self.options, self._by_id.get):
            runtime.jobs.register(kind)

    async def stop(self) -> None:
        self.contexts.clear()
        self._by_id.clear()

    async def session_added(self, handle: SessionHandle) -> None:
        runtime = self.runtime
        name = handle.name

        def publish(progress: HistoryProgress) -> None:
            runtime.bus.publish(BusEvent(name, "history.progress", progress.as_payload()))

        ctx = HistoryContext(
            runtime.db,
            handle.session_id,
            name,
            handle.engine,
            self.options,
            runtime.jobs.owner,
            tuple(runtime.hooks),
            self.replay,
            publish,
            handle.write,
        )
        self.contexts[name] = ctx
        self._by_id[handle.session_id] = ctx

    async def session_removed(self, handle: SessionHandle) -> None:
        self.contexts.pop(handle.name, None)
        self._by_id.pop(handle.session_id, None)

    def listen(self, session: str, listener: Callable[[HistoryProgress], None]) -> None:
        """Also tell `listener` about a running session's progress (the CLI's bar)."""
        ctx = self.contexts[session]
        publish = ctx.on_progress

        def both(progress: HistoryProgress) -> None:
            if publish is not None:
                publish(progress)
            listener(progress)

        ctx.on_progress = both

    # Requests.

    async def request(
        self, session: str, chat: str, *, full: bool, pages: int = 1
    ) -> BackfillRequest:
        """Queue "load older" (`pages` pages) or "load full history" for a chat."""
        handle = self.runtime.session(session)
        if not handle.engine.capabilities.on_demand_history:
            raise CapabilityMissing(NOT_AVAILABLE)
        asked = to_jid(chat)
        db = self.runtime.db

        def enqueue() -> BackfillRequest:
            with db.write() as conn:
                chat_jid = canonical(conn, handle.session_id, asked)
                if not chat_known(conn, handle.session_id, chat_jid):
                    raise ChatNotFound(f"session {session!r} has no chat {chat_jid}")
                return request_backfill(
                    conn,
                    handle.session_id,
                    chat_jid,
                    full=full,
                    pages=pages,
                    max_attempts=self.options.max_attempts,
                )

        return await asyncio.to_thread(enqueue)

    async def sync_state(self, session: str, chat: str) -> dict[str, Any]:
        """A chat's sync state; the session need not be running."""
        asked = to_jid(chat)
        handle = self.runtime.sessions.get(session)
        on_demand = handle.engine.capabilities.on_demand_history if handle else None
        db = self.runtime.db

        def read() -> dict[str, Any]:
            with db.read() as conn:
                session_id = get_session(conn, session).id
                chat_jid = canonical(conn, session_id, asked)
                if not chat_known(conn, session_id, chat_jid):
                    raise ChatNotFound(f"session {session!r} has no chat {chat_jid}")
                return sync_state_view(conn, session_id, chat_jid, on_demand_history=on_demand)

        return await asyncio.to_thread(read)

    async def session_sync_state(
        self, session: str, *, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """Every chat's sync state, a page of chats at a time (by last activity)."""
        handle = self.runtime.sessions.get(session)
        on_demand = handle.engine.capabilities.on_demand_history if handle else None
        db = self.runtime.db

        def read() -> dict[str, Any]:
            with db.read() as conn:
                session_id = get_session(conn, session).id
                page = queries.list_chats(conn, session_id, limit=limit, cursor=cursor)
                jids = [row["jid"] for row in page.items]
                stored = queries.message_counts(conn, session_id, jids)
                items = []
                for row in page.items:
                    view = sync_state_view(
                        conn, session_id, row["jid"], on_demand_history=on_demand
                    )
                    view.update(
                        name=row["name"], kind=row["kind"], stored=stored.get(row["jid"], 0)
                    )
                    items.append(view)
                return {"items": items, "nextCursor": page.next_cursor}

        return await asyncio.to_thread(read)


def history_service(runtime: Runtime) -> HistoryService:
    for service in runtime.services:
        if isinstance(service, HistoryService):
            return service
    raise RuntimeError("wasync.history is not installed in this runtime")
