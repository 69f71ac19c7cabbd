"""PostgreSQL LISTEN/NOTIFY for a node: one connection that listens, one that sends.

Notifications are how nodes tell each other "look now" (jobs were enqueued, a session
was let go, a command waits) and how live events reach every node. They are a hint,
never the only record: whatever they announce is also in a table, and a node that
lost its listening connection reconnects and looks at the tables again
(`on_reconnect`), so a notification missed meanwhile delays work, it loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

Callback = Callable[[str], None]
RECONNECT_MAX = 10.0  # seconds between attempts to get the listening connection back
# psycopg waits 130 s for a connection by default: a notification is a hint, and a
# node that cannot connect within this retries (listening) or gives the hint up (sending).
CONNECT_TIMEOUT = 10


def libpq_url(sqlalchemy_url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL (psycopg connects with it)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Notifier:
    def __init__(self, url: str) -> None:
        self.url = libpq_url(url)
        self._callbacks: dict[str, list[Callback]] = {}
        self._reconnected: list[Callable[[], Awaitable[None] | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._sender: psycopg.AsyncConnection[object] | None = None
        self._stopped = False
        self._send_lock = asyncio.Lock()
        self._listening = asyncio.Event()
        self.received = 0
        self.sent = 0

    def on(self, channel: str, callback: Callback) -> None:
        """Call `callback(payload)` for each notification on `channel` (on the loop)."""
        self._callbacks.setdefault(channel, []).append(callback)

    def on_reconnect(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Called after the listening connection came back (notifications were missed)."""
        self._reconnected.append(callback)

    async def start(self, patience: float = 10.0) -> None:
        """Start listening; waits up to `patience` seconds for the first connection."""
        self._stopped = False
        self._task = asyncio.create_task(self._listen(), name="pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), patience)

    async def stop(self) -> None:
        # Set first: a send that is under way (or comes later, from a relay still
        # draining) must not open a connection that nobody would close.
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender.close()
            self._sender = None

    async def send(self, channel: str, payloads: list[str]) -> None:
        """NOTIFY `channel` once per payload, in order, in one round trip."""
        if not payloads:
            return
        async with self._send_lock:
            for attempt in (1, 2):
                if self._stopped:
                    return  # notifications are hints: the rows they point to stay
                try:
                    if self._sender is None or self._sender.closed:
                        sender = await psycopg.AsyncConnection.connect(
                            self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                        )
                        if self._stopped:  # stopped while connecting
                            await sender.close()
                            return
                        self._sender = sender
                    async with self._sender.pipeline():
                        for payload in payloads:
                            await self._sender.execute(
                                "SELECT pg_notify(%s, %s)", (channel, payload)
                            )
                    self.sent += len(payloads)
                    return
                except psycopg.Error:
                    if self._sender is not None:
                        with contextlib.suppress(Exception):
                            await self._sender.close()
                    self._sender = None
                    if attempt == 2:
                        raise

    async def _listen(self) -> None:
        delay = 0.5
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                ) as conn:
                    for channel in self._callbacks:
                        await conn.execute(f'LISTEN "{channel}"')
                    self._listening.set()
                    delay = 0.5
                    if not first:
                        await self._tell_reconnected()
                    first = False
                    async for note in conn.notifies():
                        self.received += 1
                        for callback in self._callbacks.get(note.channel, ()):
                            try:
                                callback(note.payload)
                            except Exception:
                                log.exception("a %s notification was not handled", note.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for notifications failed (%s); again in %.1f s", exc, delay)
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _tell_reconnected(self) -> None:
        for callback in self._reconnected:
            try:
                result = callback()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("catching up after a reconnect failed")
