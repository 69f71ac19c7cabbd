"""Who is connected to each simulated account, as WhatsApp's servers see it.

WhatsApp allows one connection per linked device: when a second client connects with
the same keys, the server drops the older one ("stream replaced"). The simulator does
the same across processes: each connection writes itself as its account's current
one (newest wins) in a table of the database every process of a deployment shares,
and one watcher per process notices, about once a second, a connection of its own
that is no longer its account's current one, and drops it with the status the real
engine reports (`replaced`).

Engines built without a database (unit tests, benchmarks) share an in-process
registry instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import select

from wasync.store.db import Database
from wasync.store.schema import simulator_connections
from wasync.store.upsert import upsert

log = logging.getLogger(__name__)

WATCH_EVERY = 1.0  # seconds between looks at the accounts' current connections
_CHUNK = 500
_c = simulator_connections.c


class Registry(Protocol):
    def claim(self, account: str, connection: str) -> None: ...

    def current(self, accounts: list[str]) -> dict[str, str]: ...


class LocalRegistry:
    """In this process only."""

    def __init__(self) -> None:
        self._current: dict[str, str] = {}
        self._lock = threading.Lock()

    def claim(self, account: str, connection: str) -> None:
        with self._lock:
            self._current[account] = connection

    def current(self, accounts: list[str]) -> dict[str, str]:
        with self._lock:
            return {a: self._current[a] for a in accounts if a in self._current}


class DatabaseRegistry:
    """In the database every process shares."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, account: str, connection: str) -> None:
        with self.db.write() as conn:
            upsert(
                conn,
                simulator_connections,
                [{"account": account, "connection": connection, "connected_at": time.time()}],
                keys=("account",),
                update=("connection", "connected_at"),
            )

    def current(self, accounts: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self.db.read() as conn:
            for start in range(0, len(accounts), _CHUNK):
                part = accounts[start : start + _CHUNK]
                rows = conn.execute(select(_c.account, _c.connection).where(_c.account.in_(part)))
                out.update({str(a): str(c) for a, c in rows})
        return out


class Presence:
    """One per registry and process: connections claim their account; a watcher drops
    those that another connection of their account has replaced."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._mine: dict[str, tuple[str, Callable[[], None]]] = {}  # connection -> ...
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def new_connection() -> str:
        return uuid.uuid4().hex

    async def connected(self, account: str, connection: str, replaced: Callable[[], None]) -> None:
        """`connection` of `account` is up: it is the account's current one now."""
        await asyncio.to_thread(self.registry.claim, account, connection)
        self._mine[connection] = (account, replaced)
        loop = asyncio.get_running_loop()
        # One watcher per loop: a process that ran an earlier loop (tests, a command
        # calling asyncio.run twice) left a task that will never run again.
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._watch())

    def gone(self, connection: str) -> None:
        """`connection` closed (disconnect, logout, close): nothing to watch any more."""
        self._mine.pop(connection, None)

    async def _watch(self) -> None:
        while self._mine:
            await asyncio.sleep(WATCH_EVERY)
            mine = dict(self._mine)
            accounts = sorted({account for account, _ in mine.values()})
            try:
                current = await asyncio.to_thread(self.registry.current, accounts)
            except Exception as exc:
                log.warning("simulator: could not read the accounts' connections: %s", exc)
                continue
            for connection, (account, replaced) in mine.items():
                now = current.get(account)
                if now is not None and now != connection and connection in self._mine:
                    self._mine.pop(connection, None)
                    with contextlib.suppress(Exception):
                        replaced()


_LOCAL = Presence(LocalRegistry())
_BY_DATABASE: dict[str, Presence] = {}
_GUARD = threading.Lock()


def local_presence() -> Presence:
    return _LOCAL


def presence_of(db: Database) -> Presence:
    """The presence of the deployment that shares `db` (one per database and process)."""
    with _GUARD:
        found = _BY_DATABASE.get(db.url)
        if found is None:
            found = _BY_DATABASE[db.url] = Presence(DatabaseRegistry(db))
        return found
