"""The link to whatsmeow: start, stop, reconnect, and the gate every call passes.

`Neonize()` runs on a daemon thread (see `gostart`); its end, or a connect failure
whatsmeow does not recover from, schedules a reconnect with back-off. Calls into
whatsmeow pass the connection gate: they wait (bounded) while the link is down, so a
`Disconnected` pauses a long sync and the reconnect resumes it, and they never reach
the Go side when its client does not exist (a process-killing Go panic, not an
exception). Events leave through one queue, in the order they were emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from wasync.domain import events as ev
from wasync.domain.events import SessionStatus
from wasync.engines.base import EngineError, LoggedOutError, TransientEngineError
from wasync.engines.neonize import gostart
from wasync.engines.neonize.options import NeonizeOptions
from wasync.engines.neonize.pictures import error_text
from wasync.sessions.supervision import ConnectionGate

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[ev.Event], None]

TERMINAL = frozenset({SessionStatus.LOGGED_OUT, SessionStatus.BANNED, SessionStatus.REPLACED})
_STOP_WAIT = 5.0


class Connection:
    """Connection state and plumbing; `NeonizeEngine` adds the client and handlers."""

    def __init__(self, options: NeonizeOptions) -> None:
        self.options = options
        self._status = SessionStatus.DISCONNECTED
        self._queue: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self._listeners: list[Listener] = []
        self._gate = ConnectionGate()
        self._go_task: asyncio.Future[str] | None = None
        self._pending: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._terminal: str | None = None
        self._closed = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def client(self) -> Any:
        raise NotImplementedError

    @property
    def status(self) -> SessionStatus:
        return self._status

    def events(self) -> AsyncIterator[ev.Event]:
        return self._drain()

    async def _drain(self) -> AsyncIterator[ev.Event]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    def add_listener(self, listener: Listener) -> None:
        """Also call `listener` with every event as it is emitted (CLI status lines)."""
        self._listeners.append(listener)

    async def connect(self) -> None:
        """Connect within `connect_timeout`; for an unpaired session, start pairing.

        Returns once connected (or, when pairing is allowed, once the first QR code is
        out). Raises NotPaired, LoggedOutError (logged out, banned, replaced) or
        TransientEngineError (no network, no answer in time).
        """
        if self._terminal is not None:
            raise LoggedOutError(self._terminal)
        if self._go_task is not None:
            if self._gate.is_open:
                return
            await self._stop_go()  # one whatsmeow loop per client, never two
        self._closed = False
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] = loop.create_future()
        self._pending = pending
        self._set_status(SessionStatus.CONNECTING)
        if self.options.store.path is not None:
            # The keys are the account: keep their directory private.
            self.options.store.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        go = gostart.start(self.client, self.options.proxy)
        self._go_task = go
        go.add_done_callback(self._go_ended)
        timeout = self.options.connect_timeout
        try:
            await asyncio.wait_for(asyncio.shield(pending), timeout)
        except TimeoutError:
            # Stop blocks until whatsmeow's dial gives up: do not wait for it here.
            task, self._go_task = self._go_task, None
            self.spawn(self._stop_task(task), "stop-after-timeout")
            error = TransientEngineError(
                f"could not connect to WhatsApp within {timeout:g} s: no answer from "
                "web.whatsapp.com (check the network, firewall or proxy)"
            )
            self._connect_failed(error)
            raise error from None
        except EngineError as exc:
            await self._stop_go()
            self._connect_failed(exc)
            raise
        finally:
            if self._pending is pending:
                self._pending = None
            # A late outcome (after a timeout) has nobody to read it.
            pending.cancel()

    def _connect_failed(self, error: EngineError) -> None:
        # The session's row says why it is not connected (logouts say so themselves).
        if self._status not in TERMINAL:
            self._set_status(SessionStatus.DISCONNECTED)
            self._emit([ev.Disconnected(str(error))])

    async def disconnect(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        await self._stop_go()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._status not in TERMINAL:
            self._set_status(SessionStatus.DISCONNECTED)
        self._queue.put_nowait(None)

    def _emit(self, events: list[ev.Event] | tuple[ev.Event, ...]) -> None:
        for event in events:
            self._queue.put_nowait(event)
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("an event listener failed on %s", type(event).__name__)

    def _set_status(self, status: SessionStatus) -> None:
        self._status = status

    def _resolve_pending(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)

    def _fail_pending(self, error: BaseException) -> bool:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)
            return True
        return False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task that is kept referenced and whose failure is logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "session %s: background task %s failed",
                self.options.session,
                task.get_name(),
                exc_info=task.exception(),
            )

    def _go_ended(self, task: asyncio.Future[str]) -> None:
        problem: str | None = None
        if not task.cancelled():
            exc = task.exception()
            problem = error_text(exc) if exc is not None else (task.result() or None)
        self._gate.shut()
        if problem is not None:
            error: EngineError = _start_failure(problem)
        else:
            error = TransientEngineError("the WhatsApp client stopped before connecting")
        if self._fail_pending(error) or self._closed or self._terminal is not None:
            return
        if self._go_task is task:
            reason = f"the WhatsApp client stopped: {error}"
            self._set_status(SessionStatus.DISCONNECTED)
            self._emit([ev.Disconnected(reason)])
            self._schedule_reconnect(reason)

    def _schedule_reconnect(self, why: str) -> None:
        if self._reconnecting is None and not self._closed and self._terminal is None:
            self._reconnecting = self.spawn(self._reconnect(why), "reconnect")

    async def _reconnect(self, why: str) -> None:
        try:
            await self._stop_go()
            while not self._closed and self._terminal is None:
                delay = self.options.backoff.next_delay()
                log.warning(
                    "session %s: %s; reconnecting in %.0f s", self.options.session, why, delay
                )
                await asyncio.sleep(delay)
                try:
                    await self.connect()
                    return
                except TransientEngineError as exc:
                    why = str(exc)
                except LoggedOutError:
                    return
        finally:
            self._reconnecting = None

    async def _stop_go(self) -> None:
        task, self._go_task = self._go_task, None
        await self._stop_task(task)

    async def _stop_task(self, task: asyncio.Future[str] | None) -> None:
        self._gate.shut()
        if task is None:
            return
        # A Go call after Stop dereferences a deleted client: let running calls finish.
        try:
            await asyncio.wait_for(self._idle.wait(), _STOP_WAIT)
        except TimeoutError:
            log.warning("session %s: calls still running at stop", self.options.session)
        if not await gostart.stop(self.client, _STOP_WAIT):
            log.warning("session %s: whatsmeow is slow to stop", self.options.session)
            return
        # Its error, if any, was already reported through the connect outcome.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), _STOP_WAIT)

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one whatsmeow call once connected; retried once across a reconnect."""
        for attempt in (1, 2):
            await self._gate.wait_open(what, self.options.offline_wait)
            self._inflight += 1
            self._idle.clear()
            try:
                return await fn()
            except Exception as exc:
                if attempt == 1 and _is_offline(exc) and not self._gate.is_open:
                    continue
                raise
            finally:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.set()
        raise AssertionError("unreachable")


def _start_failure(problem: str) -> EngineError:
    if any(word in problem for word in ("dial", "websocket", "lookup", "timeout", "EOF")):
        return TransientEngineError(
            f"cannot reach WhatsApp: {problem} (check the network connection)"
        )
    return EngineError(f"whatsmeow could not start: {problem}")


def _is_offline(exc: BaseException) -> bool:
    text = error_text(exc).lower()
    return "not connected" in text or "websocket" in text or "connection closed" in text
