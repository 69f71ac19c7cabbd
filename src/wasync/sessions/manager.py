"""Sessions over their whole life: start, restore after a restart, pair, log out, delete.

A runtime service, used by the server (the API calls it) and by anything else that
manages sessions. It decides which sessions this process runs:
- a session runs in one process at a time (sessions/ownership.py): one that another
  process holds is left to it, and taken when it is free (the holder stopped or
  died);
- with several nodes on PostgreSQL, each takes up to its fair share (sessions / live
  nodes, `share`), so the load spreads, and gives back what it holds beyond it;
- a session WhatsApp logged out, banned or replaced is not started again: pairing it
  again (`create`) brings it back.

Deleting a session removes its rows (they cascade) and tells each feature through
the runtime's `deleted_listeners`, so that pictures, cached media and keys go too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import delete

from wasync.domain.events import SessionStatus
from wasync.domain.jid import normalize_phone
from wasync.engines.base import CapabilityMissing
from wasync.engines.factory import EngineFactory
from wasync.errors import Conflict
from wasync.media.layout import delete_session_media
from wasync.sessions.ownership import SessionHeld
from wasync.store import search
from wasync.store.schema import sessions as sessions_table
from wasync.store.sessions import (
    SessionNotFound,
    SessionRow,
    get_session,
    list_sessions,
    set_status,
    validate_session_name,
)

if TYPE_CHECKING:
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)

GONE = frozenset({SessionStatus.LOGGED_OUT, SessionStatus.BANNED, SessionStatus.REPLACED})
SQLITE_LOOK_EVERY = 5.0  # seconds between looks for sessions another process let go


# How many sessions this process should run, given how many there are to run
# (None: all of them). The cluster sets it from the live nodes.
Share = Callable[[int], int | None]


class SessionManager:
    def __init__(self, engines: EngineFactory | None = None) -> None:
        self._engines = engines
        self._runtime: Runtime | None = None
        self.restore_errors: dict[str, str] = {}
        self.held_elsewhere: dict[str, str] = {}  # session -> who runs it
        self.share: Share = lambda total: None
        self._busy: set[str] = set()  # sessions being created, deleted or moved
        self._assigner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.look_every = SQLITE_LOOK_EVERY
        # Sessions that must not be given away now (a pairing in progress, say).
        self.keep: Callable[[str], bool] = lambda name: False

    # Service protocol.

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        if self._engines is None:
            self._engines = EngineFactory(runtime.settings)
        if runtime.ownership.expires:
            self.look_every = runtime.ownership.ttl / 3

    async def stop(self) -> None:
        if self._assigner is not None:
            self._assigner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._assigner
            self._assigner = None

    async def session_added(self, handle: SessionHandle) -> None:
        self.held_elsewhere.pop(handle.name, None)

    async def session_removed(self, handle: SessionHandle) -> None:
        pass

    # Accessors.

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the session manager is not started")
        return self._runtime

    @property
    def engines(self) -> EngineFactory:
        if self._engines is None:
            raise RuntimeError("the session manager is not started")
        return self._engines

    @engines.setter
    def engines(self, factory: EngineFactory) -> None:
        self._engines = factory

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

    # Which sessions run here.

    def run_in_background(self) -> None:
        """Keep taking the sessions this process should run (and giving back extras)."""
        if self._assigner is None:
            self._assigner = asyncio.create_task(self._assign_loop(), name="session-assigner")

    def look_again(self) -> None:
        """Sessions may have changed hands (a node left, a session was created): look now."""
        self._wake.set()

    async def _assign_loop(self) -> None:
        while True:
            try:
                await self.assign()
            except Exception:
                log.exception("could not look for sessions to run")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.look_every)

    async def restore(self) -> list[str]:
        """Start the stored sessions this process should run, as before a restart."""
        return await self.assign()

    async def assign(self) -> list[str]:
        """Start what this process should run and can hold; give back what is too much.

        Returns the sessions started.
        """
        runtime = self.runtime
        rows = [r for r in await self.rows() if r.status not in GONE]
        quota = self.share(len(rows))
        running = [name for name in runtime.sessions if name not in self._busy]
        if quota is not None and len(running) > quota:
            await self._give_back(running, len(running) - quota)
            return []
        room = math.inf if quota is None else quota - len(running)
        started: list[str] = []
        for row in rows:
            if room <= 0:
                break
            if row.name in runtime.sessions or row.name in self._busy:
                continue
            if await self._start(row):
                started.append(row.name)
                room -= 1
        return started

    async def _start(self, row: SessionRow) -> bool:
        runtime = self.runtime
        self._busy.add(row.name)
        try:
            # Hold it first: nothing is built for a session another process runs.
            lease = await asyncio.to_thread(runtime.ownership.acquire, row.id, row.name)
            try:
                engine = self.engines.build(
                    row.name,
                    row.engine,
                    new=row.status == SessionStatus.PAIRING,
                    options=row.engine_options,
                )
                try:
                    await runtime.add_session(row.name, engine, engine_name=row.engine, lease=lease)
                except BaseException:
                    await _close(engine)
                    raise
            except BaseException:
                if row.name not in runtime.sessions:
                    await runtime.release(row.name, lease)
                raise
        except SessionHeld as held:
            self.held_elsewhere[row.name] = held.holder
            return False
        except Exception as exc:
            # One broken session must not keep the others (or the server) down.
            log.warning("session %s could not be started: %s", row.name, exc)
            self.restore_errors[row.name] = str(exc)
            return False
        finally:
            self._busy.discard(row.name)
        self.restore_errors.pop(row.name, None)
        return True

    async def _give_back(self, running: list[str], extra: int) -> None:
        """Stop `extra` sessions (the newest first) so that other nodes take them."""
        movable = [n for n in sorted(running, reverse=True) if not self.keep(n)]
        for name in movable[:extra]:
            log.info("giving session %s back: this node runs more than its share", name)
            self._busy.add(name)
            try:
                await self.runtime.remove_session(name)
            finally:
                self._busy.discard(name)

    async def stop_all(self) -> list[str]:
        """Stop every session this process runs and give each back at once (a drain)."""
        names = list(self.runtime.sessions)
        for name in names:
            await self.runtime.remove_session(name)
        return names

    # Lifecycle calls (the API's).

    def running(self, name: str) -> SessionHandle:
        """The running session `name` (SessionNotFound when it does not run here)."""
        validate_session_name(name)
        handle = self.runtime.sessions.get(name)
        if handle is not None:
            return handle
        raise SessionNotFound(f"no running session named {name!r}")

    async def require_running(self, name: str) -> SessionHandle:
        """The running session `name`; SessionNotFound if unknown, Conflict if stopped."""
        validate_session_name(name)
        handle = self.runtime.sessions.get(name)
        if handle is not None:
            return handle
        row = await self.row(name)
        raise Conflict(
            f"session {name!r} is not running here (status {row.status}){self._why(row)}"
        )

    def _why(self, row: SessionRow) -> str:
        holder = self.held_elsewhere.get(row.name)
        if holder is not None:
            return f": it is running in {holder}"
        why = self.restore_errors.get(row.name)
        if why:
            return f": {why}"
        if row.status in GONE:
            return "; create it again (POST /api/sessions) to pair it"
        return ""

    async def create(self, name: str, engine_name: str | None = None) -> SessionHandle:
        """Start a new session (pairing: QR codes follow) or re-pair a logged-out one."""
        validate_session_name(name)
        engine_name = self.engines.check(engine_name or self.engines.default_engine)
        runtime = self.runtime
        existing = runtime.sessions.get(name)
        if existing is not None:
            if existing.engine.status not in GONE:
                raise Conflict(
                    f"session {name!r} already exists and is {existing.engine.status}; "
                    "log it out or delete it first"
                )
            await runtime.remove_session(name)
        self._busy.add(name)
        try:
            engine = self.engines.build(name, engine_name, new=True)
            try:
                handle = await runtime.add_session(
                    name,
                    engine,
                    engine_name=engine_name,
                    engine_options=self.engines.options_for(engine_name),
                )
            except SessionHeld as held:
                await _close(engine)
                raise Conflict(f"session {name!r} is running in {held.holder}") from None
            except BaseException:
                await _close(engine)
                raise
        finally:
            self._busy.discard(name)
        self.restore_errors.pop(name, None)
        return handle

    async def logout(self, name: str) -> None:
        """Unlink the device from the phone and stop the session; its mirror stays."""
        handle = self.running(name)
        with contextlib.suppress(Exception):
            await handle.engine.logout()
        write = handle.write
        await self.runtime.remove_session(name, release=False)

        def mark() -> None:
            with write() as conn:
                set_status(conn, handle.session_id, SessionStatus.LOGGED_OUT, "logged out via API")

        try:
            await asyncio.to_thread(mark)
        finally:
            if handle.lease is not None:
                await asyncio.to_thread(self.runtime.ownership.release, handle.lease)

    async def stop_for_delete(self, name: str) -> None:
        """Log out and stop a session that is about to be deleted by another node, and
        mark it so that no node starts it again before its rows are gone."""
        handle = self.running(name)
        self._busy.add(name)
        try:
            if handle.engine.status is SessionStatus.CONNECTED:
                try:
                    await handle.engine.logout()
                except Exception as exc:
                    log.warning("session %s: logout before delete failed: %s", name, exc)
            write = handle.write
            await self.runtime.remove_session(name, release=False)

            def mark() -> None:
                with write() as conn:
                    set_status(conn, handle.session_id, SessionStatus.LOGGED_OUT, "being deleted")

            await asyncio.to_thread(mark)
            if handle.lease is not None:
                await self.runtime.release(name, handle.lease)
        finally:
            self._busy.discard(name)

    async def delete(self, name: str) -> None:
        """Log out (when connected), stop, and delete the session with its whole mirror."""
        row = await self.row(name)
        runtime = self.runtime
        handle = runtime.sessions.get(name)
        self._busy.add(name)
        try:
            if handle is not None:
                if handle.engine.status is SessionStatus.CONNECTED:
                    try:
                        await handle.engine.logout()
                    except Exception as exc:
                        log.warning("session %s: logout before delete failed: %s", name, exc)
                await runtime.remove_session(name)

            def remove() -> None:
                with runtime.db.write() as conn:
                    conn.execute(delete(sessions_table).where(sessions_table.c.id == row.id))
                    # Its messages leave the search index with them (SQLite queues them).
                    search.catch_up(conn)
                    if runtime.media.transactional:  # shared media go with the rows
                        delete_session_media(runtime.media, name, row.id, conn=conn)

            await asyncio.to_thread(remove)
        finally:
            self._busy.discard(name)
        for listener in list(runtime.deleted_listeners):
            try:
                listener(name, row.id)
            except Exception:
                log.exception("session %s: cleaning up after its deletion failed", name)
        await asyncio.to_thread(self._remove_files, name, row.engine, row.id)
        self.restore_errors.pop(name, None)
        self.held_elsewhere.pop(name, None)

    def _remove_files(self, name: str, engine: str, session_id: int) -> None:
        """The session's keys, pictures and cached media go with its rows: they are its
        mirror too, and a new session of the same name (or, on SQLite, the same id) must
        not be served what the old one stored."""
        try:
            self.engines.forget(name, engine)
        except Exception as exc:
            log.warning("session %s: could not delete its keys: %s", name, exc)
        media = self.runtime.media
        if not media.transactional:
            try:
                delete_session_media(media, name, session_id)
            except OSError as exc:
                log.warning("session %s: could not delete its media: %s", name, exc)

    async def pair_phone(self, name: str, phone: str) -> str:
        handle = self.running(name)
        if not handle.engine.capabilities.pair_code:
            raise CapabilityMissing(f"the {handle.engine_name} engine cannot pair with a code")
        if handle.engine.status is not SessionStatus.PAIRING:
            raise Conflict(f"session {name!r} is not pairing (it is {handle.engine.status})")
        return await handle.engine.pair_phone(normalize_phone(phone))


async def _close(engine: object) -> None:
    close = getattr(engine, "close", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result
