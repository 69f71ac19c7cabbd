"""What a running wasync process owns: the database, its sessions, the bus, services.

Features plug in without the core knowing them:

- a *transaction hook* (sync/hooks.py) runs inside every committed batch: durable
  follow-ups such as avatar jobs or webhook deliveries;
- a *service* is started and stopped with the runtime and told when a session is
  added or removed (per-session workers such as the avatar fetcher).

Every background task is owned by a service or a session and stopped in order:
sessions first (their buffered events are committed), then services.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from wasync.bus import BusEvent, EventBus
from wasync.config import Settings
from wasync.domain.batch import Batch
from wasync.domain.models import SyncProgress, SyncReport
from wasync.engines.base import Engine
from wasync.outbox import Outbox
from wasync.store.db import Database
from wasync.store.sessions import SessionNotFound
from wasync.store.writes import WriteResult
from wasync.sync.hooks import TransactionHook
from wasync.sync.publish import bus_events
from wasync.sync.session import SessionSync

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SessionHandle:
    name: str
    session_id: int
    engine: Engine
    engine_name: str
    sync: SessionSync


class Service(Protocol):
    async def start(self, runtime: Runtime) -> None: ...

    async def stop(self) -> None: ...

    async def session_added(self, handle: SessionHandle) -> None: ...

    async def session_removed(self, handle: SessionHandle) -> None: ...


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings.resolved_database_url())
        self.bus = bus or EventBus()
        self.hooks: list[TransactionHook] = []
        self.services: list[Service] = []
        self.sessions: dict[str, SessionHandle] = {}
        self.outbox = Outbox()
        # Extra figures per job kind for the queues dashboard (e.g. the avatar rate).
        self.queue_stats: dict[str, Callable[[], dict[str, Any]]] = {}
        self._started = False
        self._sync_locks: dict[str, asyncio.Lock] = {}

    def add_hook(self, hook: TransactionHook) -> None:
        """Register before sessions are added: hooks are bound when a session starts."""
        self.hooks.append(hook)

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    async def start(self) -> None:
        await asyncio.to_thread(self.db.migrate)
        for service in self.services:
            await service.start(self)
        self._started = True

    async def add_session(self, name: str, engine: Engine, *, engine_name: str) -> SessionHandle:
        """Start mirroring a session: ingest its events, connect its engine."""
        if name in self.sessions:
            raise ValueError(f"session {name!r} is already running")

        async def on_commit(batch: Batch, result: WriteResult) -> None:
            self.bus.publish_many(bus_events(name, batch))

        def on_progress(progress: SyncProgress) -> None:
            self.bus.publish(BusEvent(name, "sync.progress", progress.as_payload()))

        sync = SessionSync(
            self.db,
            engine,
            name,
            engine_name=engine_name,
            limit_per_chat=self.settings.limit_per_chat,
            on_progress=on_progress,
            on_commit=on_commit,
            hooks=self.hooks,
        )
        await sync.start()
        assert sync.session_id is not None
        handle = SessionHandle(name, sync.session_id, engine, engine_name, sync)
        self.sessions[name] = handle
        for service in self.services:
            await service.session_added(handle)
        return handle

    def session(self, name: str) -> SessionHandle:
        try:
            return self.sessions[name]
        except KeyError:
            raise SessionNotFound(f"session {name!r} is not running") from None

    def session_by_id(self, session_id: int) -> SessionHandle:
        for handle in self.sessions.values():
            if handle.session_id == session_id:
                return handle
        raise SessionNotFound(f"no running session with id {session_id}")

    async def sync_chats(self, name: str, limit_per_chat: int | None = None) -> SyncReport:
        """Initial sync of one session with `sync.progress` events; one at a time each."""
        handle = self.session(name)
        lock = self._sync_locks.setdefault(name, asyncio.Lock())
        async with lock:
            report = await handle.sync.initial_sync(limit_per_chat)
            await handle.sync.flush()
            return report

    async def remove_session(self, name: str) -> None:
        handle = self.sessions.pop(name, None)
        if handle is None:
            return
        for service in self.services:
            try:
                await service.session_removed(handle)
            except Exception:
                log.exception("service failed to release session %s", name)
        await handle.sync.stop()
        close = getattr(handle.engine, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result

    async def stop(self) -> None:
        for name in list(self.sessions):
            await self.remove_session(name)
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("service %r failed to stop", service)
        self.bus.close()
        self.db.close()
        self._started = False
