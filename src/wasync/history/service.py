"""The runtime service: a history worker per running session, and the requests API.

`install(runtime)` (wasync.history) registers it with its connect hook. The API and
other features reach it with `history_service(runtime)`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from wasync.bus import BusEvent
from wasync.domain.jid import to_jid
from wasync.engines.base import CapabilityMissing
from wasync.errors import DomainError
from wasync.history.backfill import BackfillRequest, request_backfill
from wasync.history.hook import ConnectHook, ReplayTracker
from wasync.history.kinds import NOT_AVAILABLE
from wasync.history.options import HistoryOptions
from wasync.history.progress import HistoryProgress
from wasync.history.view import chat_known, sync_state_view
from wasync.history.worker import HistoryWorker
from wasync.runtime import Runtime, SessionHandle
from wasync.store.sessions import get_session

log = logging.getLogger(__name__)


class ChatNotFound(DomainError):
    """The mirror has no such chat in this session (the API answers 404)."""


class HistoryService:
    def __init__(self, options: HistoryOptions | None = None) -> None:
        self.options = options or HistoryOptions()
        self.replay = ReplayTracker()
        self.hook = ConnectHook(self.options, self.replay)
        self.workers: dict[str, HistoryWorker] = {}
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the history service has not been started")
        return self._runtime

    # Service protocol.

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def stop(self) -> None:
        for name in list(self.workers):
            await self.workers.pop(name).stop()

    async def session_added(self, handle: SessionHandle) -> None:
        runtime = self.runtime
        name = handle.name

        def publish(progress: HistoryProgress) -> None:
            runtime.bus.publish(BusEvent(name, "history.progress", progress.as_payload()))

        worker = HistoryWorker(
            runtime.db,
            handle.session_id,
            name,
            handle.engine,
            options=self.options,
            hooks=runtime.hooks,
            replay=self.replay,
            on_progress=publish,
        )
        await worker.start()
        self.workers[name] = worker

    async def session_removed(self, handle: SessionHandle) -> None:
        worker = self.workers.pop(handle.name, None)
        if worker is not None:
            await worker.stop()

    # Requests.

    async def request(
        self, session: str, chat: str, *, full: bool, pages: int = 1
    ) -> BackfillRequest:
        """Queue "load older" (`pages` pages) or "load full history" for a chat."""
        handle = self.runtime.session(session)
        if not handle.engine.capabilities.on_demand_history:
            raise CapabilityMissing(NOT_AVAILABLE)
        chat_jid = to_jid(chat)
        db = self.runtime.db

        def enqueue() -> BackfillRequest:
            with db.write() as conn:
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

        result = await asyncio.to_thread(enqueue)
        worker = self.workers.get(session)
        if worker is not None:
            worker.wake()
        return result

    async def sync_state(self, session: str, chat: str) -> dict[str, Any]:
        """A chat's sync state; the session need not be running."""
        chat_jid = to_jid(chat)
        handle = self.runtime.sessions.get(session)
        on_demand = handle.engine.capabilities.on_demand_history if handle else None
        db = self.runtime.db

        def read() -> dict[str, Any]:
            with db.read() as conn:
                session_id = get_session(conn, session).id
                if not chat_known(conn, session_id, chat_jid):
                    raise ChatNotFound(f"session {session!r} has no chat {chat_jid}")
                return sync_state_view(conn, session_id, chat_jid, on_demand_history=on_demand)

        return await asyncio.to_thread(read)


def history_service(runtime: Runtime) -> HistoryService:
    for service in runtime.services:
        if isinstance(service, HistoryService):
            return service
    raise RuntimeError("wasync.history is not installed in this runtime")
