"""Calls for sessions that run on another node: a command job that the owner carries out.

Why a row in the jobs table and not forwarding the HTTP request to the owner: the
database is the one thing every node shares and reaches; a command addressed to a
*session* survives its node (if the owner dies mid-command, whoever takes the session
over runs it), needs no node-to-node network path nor shared secret, and goes through
the machinery every other durable piece of work uses (leases, fencing, retries). The
cost is a little latency: the owner is woken by NOTIFY at the commit, and the caller
looks at the job's row until it is finished.

A command's answer (or its error, as a type and a sentence) is the job's `result`; the
caller raises the same kind of error locally, so an API call answers as if the session
ran on the node it reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from wasync.engines.base import (
    CapabilityMissing,
    EngineError,
    LoggedOutError,
    MediaGone,
    NotConnected,
)
from wasync.errors import Conflict, DomainError, NotFound, StoreError, WasyncError
from wasync.jobs import queries as queue
from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import Done, JobOutcome, Retry
from wasync.jobs.policy import RetryPolicy
from wasync.runtime import Runtime
from wasync.store.sessions import SessionNotFound

log = logging.getLogger(__name__)

KIND = "session.command"
POLL = 0.1  # seconds between looks at a command's row while waiting for its answer

Op = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

# Errors that cross nodes, by name: what the caller raises for the owner's error.
_ERRORS: dict[str, type[WasyncError]] = {
    "not_found": NotFound,
    "session_not_found": SessionNotFound,
    "conflict": Conflict,
    "bad_request": DomainError,
    "not_available": CapabilityMissing,
    "gone": MediaGone,
    "not_connected": NotConnected,
    "logged_out": LoggedOutError,
    "engine_error": EngineError,
    "store_error": StoreError,
}


def _name_of(exc: WasyncError) -> str:
    for name, cls in _ERRORS.items():
        if type(exc) is cls:
            return name
    for name, cls in _ERRORS.items():  # a subclass: its closest listed base
        if isinstance(exc, cls):
            return name
    return "error"


class CommandFailed(WasyncError):
    """A command failed on its node for a reason with no local type."""


class Commands:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._ops: dict[str, Op] = {}
        self.carried_out = 0

    def register(self, op: str, handler: Op) -> None:
        """`handler(session, args)` carries out `op` for a session running here."""
        self._ops[op] = handler

    def install(self) -> None:
        self.runtime.jobs.register(
            JobKind(
                KIND,
                self._handle,
                # Another try only if the owner died mid-command (the new owner runs it).
                policy=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0),
                lease_seconds=60.0,
                concurrency=8,
            )
        )

    # The owner's side.

    async def _handle(self, job: queue.Job) -> JobOutcome:
        op = str(job.payload.get("op", ""))
        handler = self._ops.get(op)
        if handler is None:
            return Retry(f"unknown command {op!r}", permanent=True)
        try:
            handle = self.runtime.session_by_id(job.session_id or 0)
        except SessionNotFound:  # pragma: no cover - claimed only for sessions running here
            return Retry("the session is not running here")
        args = job.payload.get("args") or {}
        try:
            value = await handler(handle.name, args)
        except WasyncError as exc:
            self.carried_out += 1
            return Done({"ok": False, "error": _name_of(exc), "detail": str(exc)})
        self.carried_out += 1
        return Done({"ok": True, "value": value})

    # The caller's side.

    async def call(
        self,
        session_id: int,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        patience: float | None = 120.0,
    ) -> dict[str, Any]:
        """Have the node that runs the session carry out `op`; its answer, or its error.

        `key` makes the command exclusive (one pending per session and key, cluster-wide:
        a second caller gets Conflict); `patience` None waits as long as it takes.
        """
        job_id = await asyncio.to_thread(self._enqueue, session_id, op, args or {}, key)
        if job_id is None:
            raise Conflict(f"a {op.replace('_', ' ')} of this session is already running")
        deadline = None if patience is None else time.monotonic() + patience
        while True:
            job = await asyncio.to_thread(self._read, job_id)
            if job is None:
                raise Conflict("the session was deleted while the command waited")
            if job.state in queue.FINISHED:
                return _answer(job)
            if deadline is not None and time.monotonic() > deadline:
                raise NotConnected(
                    f"the node that runs this session did not answer within {patience:g} s"
                )
            await asyncio.sleep(POLL)

    def _enqueue(
        self, session_id: int, op: str, args: dict[str, Any], key: str | None
    ) -> int | None:
        with self.runtime.db.write() as conn:
            return queue.enqueue(
                conn,
                KIND,
                session_id=session_id,
                unique_key=f"{op}:{key}" if key is not None else f"{op}:{uuid.uuid4().hex}",
                payload={"op": op, "args": args, "from": self.runtime.holder},
                max_attempts=3,
            )

    def _read(self, job_id: int) -> queue.Job | None:
        with self.runtime.db.read() as conn:
            return queue.get_job(conn, job_id)


def _answer(job: queue.Job) -> dict[str, Any]:
    result = job.result or {}
    if job.state == queue.JobState.FAILED.value and not result:
        raise CommandFailed(
            f"the command failed on the node that runs the session: {job.last_error}"
        )
    if result.get("ok"):
        value = result.get("value")
        return value if isinstance(value, dict) else {}
    cls = _ERRORS.get(str(result.get("error")), CommandFailed)
    raise cls(str(result.get("detail") or "the command failed"))
