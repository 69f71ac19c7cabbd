"""Sessions as the server manages them: create (pair), restore, log out, delete, sync.

A runtime service. It keeps what the API needs beyond the runtime's running
sessions: the current pairing code of each pairing session (from `session.status`
bus events), the sync each session is running (one at a time; a client that hangs
up does not cancel it), and the first sync after a fresh pairing, started
automatically so a newly linked phone fills the mirror without another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import delete

from wasync.api.errors import Conflict
from wasync.api.media_cache import MEDIA_SUBDIR
from wasync.api.session_engines import EngineFactory
from wasync.avatars.service import storage_for
from wasync.bus import Subscription
from wasync.domain.events import SessionStatus
from wasync.domain.jid import normalize_phone
from wasync.domain.models import SyncReport
from wasync.engines.base import CapabilityMissing
from wasync.runtime import Runtime, SessionHandle
from wasync.store.schema import sessions as sessions_table
from wasync.store.sessions import (
    SessionNotFound,
    SessionRow,
    get_session,
    list_sessions,
    set_status,
    validate_session_name,
)

log = logging.getLogger(__name__)

STOP_GRACE = 2.0  # seconds a running sync may take to finish when its session stops
GONE = frozenset({SessionStatus.LOGGED_OUT, SessionStatus.BANNED, SessionStatus.REPLACED})


@dataclass(frozen=True, slots=True)
class Pairing:
    qr: str | None = None  # the QR string to render (rotates while pairing)
    phone_code: str | None = None  # the 8-character code to type on the phone
    updated_at: float = 0.0


class SessionControl:
    def __init__(self, engines: EngineFactory | None = None) -> None:
        self._engines = engines
        self._runtime: Runtime | None = None
        self.pairings: dict[str, Pairing] = {}
        self.restore_errors: dict[str, str] = {}
        self._syncs: dict[str, asyncio.Task[SyncReport]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self.sync_seconds = Histogram(
            "wasync_sync_duration_seconds",
            "Duration of chat syncs (sync-chats), by outcome.",
            ["outcome"],
            registry=None,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
        )

    # Service protocol.

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        if self._engines is None:
            self._engines = EngineFactory(runtime.settings)
        self._subscription = runtime.bus.subscribe(topics=("session.status",), maxsize=1000)
        self._watch = asyncio.create_task(self._watch_status(), name="session-status-watch")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        pending = [*self._syncs.values(), *self._tasks]
        if self._watch is not None:
            pending.append(self._watch)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def session_added(self, handle: SessionHandle) -> None:
        pass

    async def session_removed(self, handle: SessionHandle) -> None:
        self.pairings.pop(handle.name, None)
        await self._cancel_sync(handle.name, grace=STOP_GRACE)

    # Accessors.

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the session control service is not started")
        return self._runtime

    @property
    def engines(self) -> EngineFactory:
        if self._engines is None:
            raise RuntimeError("the session control service is not started")
        return self._engines

    @engines.setter
    def engines(self, factory: EngineFactory) -> None:
        self._engines = factory

    def is_syncing(self, name: str) -> bool:
        return name in self._syncs

    async def rows(self) -> list[SessionRow]:
        def read() -> list[SessionRow]:
            with self.runtime.db.read() as conn:
                return list_sessions(conn)

        return await asyncio.to_thread(read)

    async def row(self, name: str) -> SessionRow:
        validate_session_name(name)

        def read() -> SessionRow:
            with self.runtime.db.read() as conn:
                return get_session(conn, name)

        return await asyncio.to_thread(read)

    def running(self, name: str) -> SessionHandle:
        """The running session `name` (404 when it is not running)."""
        validate_session_name(name)
        handle = self.runtime.sessions.get(name)
        if handle is not None:
            return handle
        raise SessionNotFound(f"no running session named {name!r}")

    async def require_running(self, name: str) -> SessionHandle:
        """The running session `name`; 404 if unknown, 409 if stored but stopped."""
        validate_session_name(name)
        handle = self.runtime.sessions.get(name)
        if handle is not None:
            return handle
        row = await self.row(name)
        why = self.restore_errors.get(name)
        hint = (
            f": {why}"
            if why
            else "; create it again (POST /api/sessions) to pair it"
            if row.status in GONE
            else ""
        )
        raise Conflict(f"session {name!r} is not running (status {row.status}){hint}")

    # Lifecycle.

    async def restore(self) -> list[str]:
        """Start every stored session that is not logged out, as before a restart."""
        restored = []
        for row in await self.rows():
            if row.name in self.runtime.sessions or row.status in GONE:
                continue
            try:
                engine = self.engines.build(
                    row.name, row.engine, new=row.status == SessionStatus.PAIRING
                )
                await self.runtime.add_session(row.name, engine, engine_name=row.engine)
            except Exception as exc:
                # One broken session must not keep the others (or the server) down.
                log.warning("session %s could not be restored: %s", row.name, exc)
                self.restore_errors[row.name] = str(exc)
                continue
            self.restore_errors.pop(row.name, None)
            restored.append(row.name)
        return restored

    async def create(self, name: str, engine_name: str | None = None) -> SessionHandle:
        """Start a new session (pairing: QR codes follow) or re-pair a logged-out one."""
        validate_session_name(name)
        engine_name = self.engines.check(engine_name or self.engines.default_engine)
        existing = self.runtime.sessions.get(name)
        if existing is not None:
            if existing.engine.status not in GONE:
                raise Conflict(
                    f"session {name!r} already exists and is {existing.engine.status}; "
                    "log it out or delete it first"
                )
            await self.runtime.remove_session(name)
        engine = self.engines.build(name, engine_name, new=True)
        self.pairings[name] = Pairing(updated_at=time.time())
        try:
            handle = await self.runtime.add_session(name, engine, engine_name=engine_name)
        except BaseException:
            self.pairings.pop(name, None)
            raise
        self.restore_errors.pop(name, None)
        delay = self.engines.simulator.pair_delay
        if engine_name == "simulator" and delay is not None:
            self._spawn(self._confirm_pairing_later(handle, delay), f"pair-{name}")
        return handle

    async def _confirm_pairing_later(self, handle: SessionHandle, delay: float) -> None:
        # The demo's stand-in for a person scanning the QR code with their phone.
        await asyncio.sleep(delay)
        confirm = getattr(handle.engine, "confirm_pairing", None)
        if confirm is not None and handle.engine.status is SessionStatus.PAIRING:
            await confirm()

    async def logout(self, name: str) -> None:
        """Unlink the device from the phone and stop the session; its mirror stays."""
        handle = self.running(name)
        await self._cancel_sync(name)
        with contextlib.suppress(Exception):
            await handle.engine.logout()
        await self.runtime.remove_session(name)

        def mark() -> None:
            with self.runtime.db.write() as conn:
                set_status(conn, handle.session_id, SessionStatus.LOGGED_OUT, "logged out via API")

        await asyncio.to_thread(mark)

    async def delete(self, name: str) -> None:
        """Log out (when connected), stop, and delete the session with its whole mirror."""
        row = await self.row(name)
        handle = self.runtime.sessions.get(name)
        if handle is not None:
            await self._cancel_sync(name)
            if handle.engine.status is SessionStatus.CONNECTED:
                try:
                    await handle.engine.logout()
                except Exception as exc:
                    log.warning("session %s: logout before delete failed: %s", name, exc)
            await self.runtime.remove_session(name)

        def remove() -> None:
            with self.runtime.db.write() as conn:
                conn.execute(delete(sessions_table).where(sessions_table.c.id == row.id))

        await asyncio.to_thread(remove)
        self._remove_key_file(name)
        await asyncio.to_thread(self._remove_files, name, row.id)
        self.pairings.pop(name, None)
        self.restore_errors.pop(name, None)

    def _remove_files(self, name: str, session_id: int) -> None:
        """The session's pictures and cached media go with its rows: they are its
        mirror too, and a new session of the same name (or, on SQLite, the same id)
        must not be served what the old one stored."""
        data_dir = self.runtime.settings.data_dir
        for folder in (
            storage_for(self.runtime.settings).session_dir(name),
            data_dir / MEDIA_SUBDIR / str(session_id),
        ):
            shutil.rmtree(folder, ignore_errors=True)

    def _remove_key_file(self, name: str) -> None:
        from wasync.sessions.location import session_file

        path = session_file(self.runtime.settings.data_dir, name)
        for candidate in (path, *path.parent.glob(f"{path.name}-*")):  # -wal, -shm
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()

    async def pair_phone(self, name: str, phone: str) -> str:
        handle = self.running(name)
        if not handle.engine.capabilities.pair_code:
            raise CapabilityMissing(f"the {handle.engine_name} engine cannot pair with a code")
        if handle.engine.status is not SessionStatus.PAIRING:
            raise Conflict(f"session {name!r} is not pairing (it is {handle.engine.status})")
        code = await handle.engine.pair_phone(normalize_phone(phone))
        old = self.pairings.get(name, Pairing())
        self.pairings[name] = Pairing(old.qr, code, time.time())
        return code

    # Syncs.

    def start_sync(self, name: str, limit_per_chat: int | None = None) -> asyncio.Task[SyncReport]:
        """Run the sync of `name` in the background; the task outlives the request."""
        self.running(name)
        if name in self._syncs:
            raise Conflict(f"a sync of session {name!r} is already running")
        task = asyncio.create_task(self._sync(name, limit_per_chat), name=f"sync-{name}")
        self._syncs[name] = task
        task.add_done_callback(lambda t: self._sync_done(name, t))
        return task

    async def _sync(self, name: str, limit_per_chat: int | None) -> SyncReport:
        started = time.monotonic()
        outcome = "error"
        try:
            report = await self.runtime.sync_chats(name, limit_per_chat)
            outcome = "partial" if report.failed_chats else "ok"
            return report
        finally:
            self.sync_seconds.labels(outcome).observe(time.monotonic() - started)

    def _sync_done(self, name: str, task: asyncio.Task[SyncReport]) -> None:
        if self._syncs.get(name) is task:
            del self._syncs[name]
        if not task.cancelled() and task.exception() is not None:
            log.warning("sync of session %s failed: %s", name, task.exception())

    async def _cancel_sync(self, name: str, grace: float = 0.0) -> None:
        task = self._syncs.get(name)
        if task is None:
            return
        if grace > 0:
            # A sync about to finish may; cancelling it mid-write would leave its
            # database thread running while the runtime closes the database.
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), grace)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # Pairing codes and the first sync after pairing.

    async def _watch_status(self) -> None:
        assert self._subscription is not None
        async for event in self._subscription:
            try:
                self._on_status(event.session, event.data)
            except Exception:
                log.exception("session %s: status event not handled", event.session)

    def _on_status(self, name: str, data: dict[str, object]) -> None:
        status = data.get("status")
        if status == SessionStatus.PAIRING:
            code = data.get("code")
            if not isinstance(code, str):
                return
            old = self.pairings.get(name, Pairing())
            if data.get("codeKind") == "phone":
                self.pairings[name] = Pairing(old.qr, code, time.time())
            else:
                self.pairings[name] = Pairing(code, old.phone_code, time.time())
        elif status == SessionStatus.CONNECTED:
            if self.pairings.pop(name, None) is not None and name not in self._syncs:
                # A phone was just linked: fill the mirror without waiting for a call.
                with contextlib.suppress(Exception):
                    self.start_sync(name)
        elif status in GONE:
            self.pairings.pop(name, None)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed: %s", task.get_name(), task.exception())
