"""One session's sync: engine events → the process's writer, plus initial sync on demand."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging

from wasync.domain.events import Connected, SessionStatus
from wasync.domain.models import SyncProgress, SyncReport
from wasync.engines.base import Engine
from wasync.store.db import Database
from wasync.sync.commit import WriteFn
from wasync.sync.hooks import Hooks
from wasync.sync.initial import DEFAULT_LIMIT_PER_CHAT, ProgressListener, initial_sync
from wasync.sync.writer import SessionStream

log = logging.getLogger(__name__)

CONNECT_COMMIT_WAIT = 5.0  # seconds start() waits for an engine's Connected to be committed


class SessionSync:
    """Keeps one session's mirror: live ingestion from connect until stop."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        session_name: str,
        *,
        session_id: int,
        stream: SessionStream,
        engine_name: str,
        write: WriteFn | None = None,
        limit_per_chat: int = DEFAULT_LIMIT_PER_CHAT,
        on_progress: ProgressListener | None = None,
        hooks: Hooks = (),
    ) -> None:
        self.db = db
        self.engine = engine
        self.session_name = session_name
        self.session_id = session_id
        self.stream = stream
        self.engine_name = engine_name
        self.write = write or db.write
        self.limit_per_chat = limit_per_chat
        self.on_progress = on_progress
        self.hooks = hooks
        self._pump: asyncio.Task[None] | None = None
        self.events_received = 0  # events taken from the engine (tests wait on it)
        self._connect_committed = asyncio.Event()

    async def start(self) -> None:
        """Start ingesting the session's events, then connect the engine."""
        # Listen before connecting, so that nothing pushed at connect time is missed.
        self._pump = asyncio.create_task(self._pump_events(), name=f"pump-{self.session_name}")
        await self.engine.connect()
        if self.engine.status is SessionStatus.CONNECTED:
            # Record the connect before anything else writes (an initial sync right
            # after start): its hooks must see the mirror as it was before.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connect_committed.wait(), CONNECT_COMMIT_WAIT)

    async def _pump_events(self) -> None:
        stream = self.stream
        try:
            async for event in self.engine.events():
                if isinstance(event, Connected):
                    # Committed on its own: transaction hooks then see the mirror as it
                    # was before the offline replay that follows (gap fill needs that).
                    await stream.flush()
                    await stream.put(event)
                    await stream.flush()
                    self._connect_committed.set()
                else:
                    await stream.put(event)
                self.events_received += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event stream of session %s failed", self.session_name)
            raise

    async def initial_sync(
        self, limit_per_chat: int | None = None, *, on_progress: ProgressListener | None = None
    ) -> SyncReport:
        """The initial sync; `on_progress` hears about it too (a command's progress bar)."""
        listeners = [f for f in (self.on_progress, on_progress) if f is not None]

        async def tell(progress: SyncProgress) -> None:
            for listener in listeners:
                out = listener(progress)
                if inspect.isawaitable(out):
                    await out

        return await initial_sync(
            self.engine,
            self.db,
            self.session_id,
            self.session_name,
            limit_per_chat=self.limit_per_chat if limit_per_chat is None else limit_per_chat,
            on_progress=tell,
            hooks=self.hooks,
            write=self.write,
        )

    async def flush(self) -> None:
        """Wait until every event received so far is committed."""
        await self.stream.flush()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Disconnect, commit every event the engine already delivered, then stop.

        An engine's event stream ends after `disconnect()` once it has handed over what
        it queued; the pump reads it to the end rather than being cancelled, so events
        that were acked by the engine are not dropped on shutdown.
        """
        with contextlib.suppress(Exception):
            await self.engine.disconnect()
        if self._pump is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._pump), drain_timeout)
            except TimeoutError:
                log.warning("session %s: event stream did not end; stopping it", self.session_name)
                self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        await self.stream.close()
