"""What a running wasync process owns: the database, its sessions, the bus, services.

One of each per process, shared by every session it runs:
- the *writer* (sync/writer.py), which commits every session's live events in shared
  group commits;
- the *job runner* (jobs/runner.py), with the job kinds that features register;
- the *ownership* of sessions (sessions/ownership.py): a session runs here only while
  this process holds it, and everything it writes is fenced by that.

Features plug in without the core knowing them:
- a *transaction hook* (sync/hooks.py) runs inside every committed batch: durable
  follow-ups such as avatar jobs or webhook deliveries;
- a *job kind* (jobs/kinds.py) is registered with the runner;
- a *service* is started and stopped with the runtime and told when a session is
  added or removed (per-session state such as a picture rate limiter), and when one
  is deleted (its own rows and files).

Every background task is owned by a service, a session or the runtime and stopped in
order: sessions first (their buffered events are committed), then services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wasync.bus import BusEvent, EventBus
from wasync.config import Settings
from wasync.domain.batch import Batch
from wasync.domain.events import Connected, IdentitiesRestated
from wasync.domain.models import SyncProgress, SyncReport
from wasync.engines.base import Engine
from wasync.jobs.runner import JobRunner
from wasync.media.store import MediaStore, media_store_for
from wasync.outbox import Outbox
from wasync.sessions.manager import SessionManager
from wasync.sessions.ownership import Lease, Ownership, describe_process
from wasync.store.db import Database
from wasync.store.sessions import SessionNotFound, ensure_session
from wasync.store.writes import WriteResult
from wasync.sync.commit import WriteFn
from wasync.sync.hooks import TransactionHook
from wasync.sync.publish import bus_events
from wasync.sync.session import SessionSync
from wasync.sync.writer import GroupWriter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SessionHandle:
    name: str
    session_id: int
    engine: Engine
    engine_name: str
    sync: SessionSync
    lease: Lease | None = None
    write: WriteFn = field(default=lambda: contextlib.nullcontext())  # type: ignore[assignment]


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
        holder: str | None = None,
        holder_detail: str | None = None,
        media: MediaStore | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings.resolved_database_url())
        # Pictures and media: files here, or blobs in the database every node reads.
        self.media = media or media_store_for(settings.media_store, settings.data_dir, self.db)
        self.bus = bus or EventBus()
        self.hooks: list[TransactionHook] = []
        self.services: list[Service] = []
        self.sessions: dict[str, SessionHandle] = {}
        self.outbox = Outbox()
        self.writer = GroupWriter(self.db, hooks=self.hooks)
        self.jobs = JobRunner(self.db)
        self.holder = holder or self.jobs.owner
        self.ownership = Ownership.for_database(
            self.db,
            self.holder,
            holder_detail or describe_process("wasync"),
            ttl=settings.lease_seconds,
        )
        # Extra figures per job kind for the queues dashboard (e.g. the avatar rate).
        self.queue_stats: dict[str, Callable[[], dict[str, Any]]] = {}
        # Called with (session name, session id) once a session's rows are deleted.
        self.deleted_listeners: list[Callable[[str, int], None]] = []
        # Called with a session's name once this process gave it back (others may take it).
        self.released_listeners: list[Callable[[str], None]] = []
        # Which sessions run here, and their lifecycle (create, restore, delete, ...).
        self.manager = SessionManager()
        self.add_service(self.manager)
        self._started = False
        self._sync_locks: dict[str, asyncio.Lock] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._fenced: set[asyncio.Task[None]] = set()

    def add_hook(self, hook: TransactionHook) -> None:
        """Register before sessions are added: every batch then runs it."""
        self.hooks.append(hook)

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    async def start(self) -> None:
        await asyncio.to_thread(self.db.migrate)
        for service in self.services:
            await service.start(self)
        self.writer.start()
        await self.jobs.start()
        if self.ownership.expires:
            self._keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")
        self._started = True

    # Sessions.

    async def add_session(
        self,
        name: str,
        engine: Engine,
        *,
        engine_name: str,
        lease: Lease | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> SessionHandle:
        """Start mirroring a session: hold it, ingest its events, connect its engine.

        `engine_options` are stored with a new session (see `ensure_session`).
        Raises SessionHeld when another process runs it.
        """
        if name in self.sessions:
            raise ValueError(f"session {name!r} is already running")

        def register() -> int:
            with self.db.write() as conn:
                return ensure_session(conn, name, engine_name, engine_options)

        session_id = await asyncio.to_thread(register)
        bind = getattr(engine, "bind_presence", None)
        if bind is not None:
            # A simulated account: the simulated servers (shared by every process on this
            # database) drop an older connection of it, as WhatsApp does.
            from wasync.engines.simulator.presence import presence_of

            bind(presence_of(self.db), name)
        if lease is None:
            lease = await asyncio.to_thread(self.ownership.acquire, session_id, name)
        held = lease

        def write() -> contextlib.AbstractContextManager[Any]:
            return self.ownership.fenced(held)

        async def on_commit(batch: Batch, result: WriteResult) -> None:
            self.bus.publish_many(bus_events(name, batch))
            if any(isinstance(e, Connected) for e in batch.other):
                self.jobs.wake()  # work that waited for the connection may go now

        def on_progress(progress: SyncProgress) -> None:
            self.bus.publish(BusEvent(name, "sync.progress", progress.as_payload()))

        stream = self.writer.attach(
            session_id,
            lease=lease,
            on_commit=on_commit,
            on_fenced=lambda _sid: self._lost(name, held),
        )
        sync = SessionSync(
            self.db,
            engine,
            name,
            session_id=session_id,
            stream=stream,
            engine_name=engine_name,
            write=write,
            limit_per_chat=self.settings.limit_per_chat,
            on_progress=on_progress,
            hooks=self.hooks,
        )
        handle = SessionHandle(name, session_id, engine, engine_name, sync, lease, write)
        self.sessions[name] = handle
        # First: rows this mirror kept under both forms of a person it now knows merge.
        await stream.put(IdentitiesRestated())
        try:
            await sync.start()
        except BaseException:
            self.sessions.pop(name, None)
            with contextlib.suppress(Exception):
                await sync.stop()
            await asyncio.to_thread(self.ownership.release, lease)
            raise
        await self.jobs.add_session(session_id, write)
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

    async def remove_session(self, name: str, *, release: bool = True) -> None:
        """Stop a session; `release` gives it back at once (False: it was taken from us,
        or it is being deleted)."""
        handle = self.sessions.pop(name, None)
        if handle is None:
            return
        for service in self.services:
            try:
                await service.session_removed(handle)
            except Exception:
                log.exception("service failed to release session %s", name)
        await self.jobs.remove_session(handle.session_id)
        await handle.sync.stop()
        close = getattr(handle.engine, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        if release and handle.lease is not None:
            await self.release(name, handle.lease)

    async def release(self, name: str, lease: Lease) -> None:
        """Give a stopped session back, and tell whoever listens."""
        try:
            await asyncio.to_thread(self.ownership.release, lease)
        except Exception as exc:
            # It expires by itself (or its file lock goes with the process).
            log.warning("session %s: could not give it back: %s", name, exc)
            return
        for listener in list(self.released_listeners):
            try:
                listener(name)
            except Exception:
                log.exception("a listener of given-back sessions failed")

    def _lost(self, name: str, lease: Lease) -> None:
        """Another process holds the session now: stop it here, writing nothing more."""
        handle = self.sessions.get(name)
        if handle is None or handle.lease != lease:
            return
        log.warning("session %s was taken over by another process; stopping it here", name)
        task = asyncio.create_task(self.remove_session(name, release=False), name=f"lost-{name}")
        self._fenced.add(task)
        task.add_done_callback(self._fenced.discard)

    async def _keep_leases(self) -> None:
        """Renew the leases of the sessions this process runs (PostgreSQL)."""
        period = self.ownership.ttl / 3
        while True:
            await asyncio.sleep(period)
            leases = [h.lease for h in self.sessions.values() if h.lease is not None]
            try:
                lost = await asyncio.to_thread(self.ownership.renew, leases)
            except Exception as exc:
                log.warning("could not renew session leases: %s", exc)
                continue
            for handle in list(self.sessions.values()):
                if handle.session_id in lost and handle.lease is not None:
                    self._lost(handle.name, handle.lease)

    async def drain(self) -> None:
        """Stop every session (all at once) and give each back as soon as it stopped:
        other nodes take them over within moments, not after the lease time."""
        await self.manager.stop()  # it must not start sessions while we stop them
        results = await asyncio.gather(
            *(self.remove_session(name) for name in list(self.sessions)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if isinstance(result, Exception):
                log.warning("a session did not stop cleanly: %s", result)

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        await self.drain()
        await asyncio.gather(*self._fenced, return_exceptions=True)
        await self.jobs.stop()
        await self.writer.close()
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("service %r failed to stop", service)
        self.ownership.close()
        self.bus.close()
        self.db.close()
        self._started = False
