"""A generic worker over the jobs table: claim, run with a renewed lease, record.

Handlers return an outcome instead of raising, so the retry rules live in one place:

- `Done()`: the job is finished.
- `Retry(error, retry_after=None, permanent=False)`: a failed try; the runner's
  `RetryPolicy` decides when to try again, or gives up (the job stays visible as
  `failed`). An exception escaping the handler counts as a transient Retry.
- `Defer(run_at, reason)`: put back without counting a try (rate limits, pauses).

The final status write is shielded from cancellation, so stopping the worker never
leaves a finished job looking unfinished; a worker that dies outright leaves a
lease that expires, and another worker takes the job over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wasync.store import jobs as J
from wasync.store.db import Database
from wasync.store.retry import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Done:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    retry_after: float | None = None
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class Defer:
    run_at: float
    reason: str | None = None


Outcome = Done | Retry | Defer
Handler = Callable[[J.Job], Awaitable[Outcome]]


# This process among all that ever had its pid on this host: a restarted container's
# process often gets the pid of the one that died (1, say), and must not take that
# one's leases for its own.
PROCESS_TOKEN = uuid.uuid4().hex[:8]


def worker_id(prefix: str) -> str:
    """Unique per process and worker: "<prefix>:<host>:<pid>:<process token>-<suffix>"."""
    suffix = uuid.uuid4().hex[:6]
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{PROCESS_TOKEN}-{suffix}"


class JobRunner:
    def __init__(
        self,
        db: Database,
        kinds: tuple[str, ...],
        handler: Handler,
        *,
        name: str = "worker",
        session_id: int | None = None,
        concurrency: int = 1,
        lease_seconds: float = 60.0,
        poll_interval: float = 1.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.db = db
        self.kinds = kinds
        self.handler = handler
        self.name = name
        self.session_id = session_id
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.policy = policy or RetryPolicy()
        self.owner = worker_id(name)
        self.processed = 0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for i in range(self.concurrency):
            task = asyncio.create_task(self._loop(), name=f"{self.name}-{i}")
            task.add_done_callback(self._log_crash)
            self._tasks.append(task)

    def wake(self) -> None:
        """New work was enqueued: claim now instead of at the next poll."""
        self._wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the jobs in hand (for up to `grace` seconds), then stop claiming."""
        self._stop.set()
        self._wake.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped on an error", self.name, exc_info=task.exception())

    async def _loop(self) -> None:
        while not self._stop.is_set():
            job = await asyncio.to_thread(self._claim_one)
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                continue
            await self.run_job(job)

    def _claim_one(self) -> J.Job | None:
        with self.db.write() as conn:
            got = J.claim(
                conn,
                self.kinds,
                self.owner,
                lease_seconds=self.lease_seconds,
                session_id=self.session_id,
            )
        return got[0] if got else None

    async def run_job(self, job: J.Job) -> Outcome:
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            outcome: Outcome = await self.handler(job)
        except asyncio.CancelledError:
            # Stopping mid-job: give the job back at once rather than wait for the lease.
            await asyncio.shield(asyncio.to_thread(self._record, job, Defer(time.time())))
            raise
        except Exception as exc:
            log.exception("%s: job %s (%s) failed", self.name, job.id, job.kind)
            outcome = Retry(f"{type(exc).__name__}: {exc}")
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await asyncio.shield(asyncio.to_thread(self._record, job, outcome))
        self.processed += 1
        return outcome

    async def _heartbeat(self, job: J.Job) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)

            def beat() -> bool:
                with self.db.write() as conn:
                    return J.heartbeat(conn, job.id, self.owner, self.lease_seconds)

            if not await asyncio.to_thread(beat):
                log.warning("%s: lost the lease of job %s", self.name, job.id)
                return

    def _record(self, job: J.Job, outcome: Outcome) -> None:
        now = time.time()
        with self.db.write() as conn:
            match outcome:
                case Done():
                    J.complete(conn, job.id, self.owner, now=now)
                case Defer(run_at=run_at, reason=reason):
                    J.defer(conn, job.id, self.owner, run_at, reason=reason, now=now)
                case Retry(error=error, retry_after=retry_after, permanent=permanent):
                    decision = self.policy.decide(
                        job.attempts,
                        now,
                        retry_after=retry_after,
                        permanent=permanent or job.attempts >= job.max_attempts,
                    )
                    J.fail(conn, job.id, self.owner, error, decision, now=now)
