"""Sessions as the API sees them: lifecycle calls, pairing codes, and running syncs.

A runtime service. The lifecycle itself (create, restore, log out, delete) is the
session manager's (sessions/manager.py); this adds what the API needs beyond it: the
current pairing code of each pairing session (from `session.status` bus events, which
reach every node), the sync each session is running (one at a time; a client that
hangs up does not cancel it), and the first sync after a fresh pairing, started
automatically so a newly linked phone fills the mirror without another call.

Every call that needs the session's engine goes through `call(session, op, args)`:
here when the session runs here, or as a command carried out by the node that runs it
(cluster/commands.py), with the same answer or the same error either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

from wasync.bus import Subscription
from wasync.cluster.commands import Op
from wasync.cluster.service import ClusterService
from wasync.domain.events import SessionStatus
from wasync.domain.models import SyncReport
from wasync.engines.factory import EngineFactory
from wasync.errors import Conflict, NotFound
from wasync.runtime import Runtime, SessionHandle
from wasync.sessions.manager import GONE, SessionManager
from wasync.store.sessions import SessionRow

log = logging.getLogger(__name__)

STOP_GRACE = 2.0  # seconds a running sync may take to finish when its session stops

__all__ = ["GONE", "Pairing", "SessionControl"]


@dataclass(frozen=True, slots=True)
class Pairing:
    qr: str | None = None  # the QR string to render (rotates while pairing)
    phone_code: str | None = None  # the 8-character code to type on the phone
    updated_at: float = 0.0


class SessionControl:
    def __init__(self) -> None:
        self._runtime: Runtime | None = None
        self.pairings: dict[str, Pairing] = {}
        self._syncs: dict[str, asyncio.Task[SyncReport]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._ops: dict[str, Op] = {
            "sync_chats": self._op_sync_chats,
            "pair_phone": self._op_pair_phone,
            "logout": self._op_logout,
            "prepare_delete": self._op_prepare_delete,
            "history_request": self._op_history_request,
            "avatars_sync": self._op_avatars_sync,
            "avatar_check": self._op_avatar_check,
        }
        self._cluster: ClusterService | None = None
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
        # A pairing session stays where it is: moving it would restart its QR codes.
        runtime.manager.keep = lambda name: name in self.pairings or name in self._syncs
        self._subscription = runtime.bus.subscribe(topics=("session.status",), maxsize=1000)
        self._watch = asyncio.create_task(self._watch_status(), name="session-status-watch")
        found = next((s for s in runtime.services if isinstance(s, ClusterService)), None)
        if found is not None and found.commands is not None:
            self._cluster = found
            for op, handler in self._ops.items():
                found.commands.register(op, handler)

    def register(self, op: str, handler: Op) -> None:
        """A call other features offer (history, avatars): `handler(session, args)` runs
        where the session runs."""
        self._ops[op] = handler
        if self._cluster is not None and self._cluster.commands is not None:
            self._cluster.commands.register(op, handler)

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
    def manager(self) -> SessionManager:
        return self.runtime.manager

    @property
    def engines(self) -> EngineFactory:
        return self.manager.engines

    @property
    def restore_errors(self) -> dict[str, str]:
        return self.manager.restore_errors

    def is_syncing(self, name: str) -> bool:
        return name in self._syncs

    async def rows(self) -> list[SessionRow]:
        return await self.manager.rows()

    async def row(self, name: str) -> SessionRow:
        return await self.manager.row(name)

    def running(self, name: str) -> SessionHandle:
        return self.manager.running(name)

    async def require_running(self, name: str) -> SessionHandle:
        return await self.manager.require_running(name)

    # Calls that need the session's engine, wherever it runs.

    async def call(
        self,
        name: str,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        patience: float | None = 120.0,
    ) -> dict[str, Any]:
        """Carry out `op` for session `name` where it runs; its answer.

        `key` makes a remote command exclusive cluster-wide (one pending per session and
        key); `patience` bounds the wait for a remote answer (None: no bound).
        """
        handler = self._ops.get(op)
        if handler is None:
            raise NotFound(f"no such operation {op!r}")
        if name in self.runtime.sessions:
            return await handler(name, args or {})
        session_id = await self.remote(name)
        assert self._cluster is not None and self._cluster.commands is not None
        return await self._cluster.commands.call(
            session_id, op, args or {}, key=key, patience=patience
        )

    async def remote(self, name: str) -> int:
        """The id of session `name` running on another node (Conflict if none runs it)."""
        row = await self.row(name)
        holder = await asyncio.to_thread(self.runtime.ownership.holder_of, row.id)
        if holder is None or self._cluster is None:
            await self.manager.require_running(name)  # raises, saying why
        return row.id

    def holders(self) -> dict[int, str]:
        """Who runs each running session (by session id), as far as the leases say."""
        from wasync.cluster import nodes

        with self.runtime.db.read() as conn:
            return nodes.holders(conn, time.time())

    async def _op_sync_chats(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        limit = args.get("limitPerChat")
        task = self.start_sync(name, int(limit) if limit is not None else None)
        # Shielded: a caller that hangs up does not stop the sync half-way.
        report = await asyncio.shield(task)
        return {
            "chats": report.chats,
            "messages": report.messages,
            "failedChats": [{"chatId": f.chat_jid, "error": f.error} for f in report.failed_chats],
            "seconds": report.seconds,
        }

    async def _op_pair_phone(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"code": await self.pair_phone(name, str(args.get("phone", "")))}

    async def _op_logout(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self.logout(name)
        return {}

    async def _op_prepare_delete(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        await self._cancel_sync(name)
        await self.manager.stop_for_delete(name)
        return {}

    async def _op_history_request(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        from wasync.history import ChatNotFound, history_service

        try:
            request = await history_service(self.runtime).request(
                name,
                str(args["chat"]),
                full=bool(args.get("full")),
                pages=int(args.get("pages") or 1),
            )
        except ChatNotFound as exc:
            raise NotFound(str(exc)) from None
        return request.as_payload()

    async def _op_avatars_sync(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        from wasync.avatars import avatar_service

        return {"enqueued": await avatar_service(self.runtime).enqueue_all(name)}

    async def _op_avatar_check(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        from wasync.avatars import avatar_service

        result, queued = await avatar_service(self.runtime).check_now(name, str(args["jid"]))
        return {**result.as_json(), "queued": queued}

    # Lifecycle.

    async def restore(self) -> list[str]:
        return await self.manager.restore()

    async def create(self, name: str, engine_name: str | None = None) -> SessionHandle:
        """Start a new session (pairing: QR codes follow) or re-pair a logged-out one."""
        self.pairings[name] = Pairing(updated_at=time.time())
        try:
            handle = await self.manager.create(name, engine_name)
        except BaseException:
            self.pairings.pop(name, None)
            raise
        delay = self.engines.simulator.pair_delay
        if handle.engine_name == "simulator" and delay is not None:
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
        self.running(name)
        await self._cancel_sync(name)
        await self.manager.logout(name)

    async def delete(self, name: str) -> None:
        """Log out (when connected), stop, and delete the session with its whole mirror.

        A session another node runs is stopped there first (and kept from starting
        again anywhere); then its rows go, from here.
        """
        await self._cancel_sync(name)
        if name not in self.runtime.sessions:
            row = await self.row(name)
            holder = await asyncio.to_thread(self.runtime.ownership.holder_of, row.id)
            if holder is not None and self._cluster is not None:
                await self.call(name, "prepare_delete")
        await self.manager.delete(name)
        self.pairings.pop(name, None)

    async def pair_phone(self, name: str, phone: str) -> str:
        code = await self.manager.pair_phone(name, phone)
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
                self._on_status(event.session, event.data, local=event.origin is None)
            except Exception:
                log.exception("session %s: status event not handled", event.session)

    def _on_status(self, name: str, data: dict[str, object], *, local: bool = True) -> None:
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
            was_pairing = self.pairings.pop(name, None) is not None
            if was_pairing and local and name not in self._syncs:
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
