"""One session's avatar worker: claim due jobs at the session's pace, and refresh.

The claim loop takes a job only when a request could go out now (the limiter is
ready and the engine connected), so a claimed job never sits in `running` through a
pause. Jobs run through `JobRunner.run_job`: the lease is renewed while the job runs,
the outcome is recorded shielded from cancellation, and a worker that dies leaves a
lease that expires so another worker takes the job over.

Outcomes map to the queue's decisions:
- new, unchanged, none: done;
- rate limited: deferred to the end of the pause, not counted as a try;
- session offline: deferred, not counted;
- transient failure: retried with exponential back-off and jitter, then failed;
- permanent failure (not an image, too large): failed at once, visible with why.

The refresh loop re-queues pictures whose last check is older than the TTL, oldest
first, only as many as the pace can serve before its next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any

from wasync.avatars import records
from wasync.avatars.config import AvatarConfig
from wasync.avatars.enqueue import KIND, Reason, enqueue_avatars, pending_count, prune_done
from wasync.avatars.fetch import AvatarFetcher, Failure, Outcome
from wasync.avatars.pace import PictureRateLimiter
from wasync.domain.events import SessionStatus
from wasync.engines.base import Engine
from wasync.errors import DomainError
from wasync.store import jobs as J
from wasync.store.db import Database
from wasync.store.retry import RetryPolicy
from wasync.workers.runner import Defer, Done, JobRunner, Retry
from wasync.workers.runner import Outcome as JobOutcome

log = logging.getLogger(__name__)


class SessionWorker:
    def __init__(
        self,
        db: Database,
        session_id: int,
        session_name: str,
        engine: Engine,
        fetcher: AvatarFetcher,
        config: AvatarConfig,
    ) -> None:
        self.db = db
        self.session_id = session_id
        self.session_name = session_name
        self.engine = engine
        self.fetcher = fetcher
        self.config = config
        self.runner = JobRunner(
            db,
            (KIND,),
            self._handle,
            name=f"avatars:{session_name}",
            session_id=session_id,
            lease_seconds=config.lease_seconds,
            poll_interval=config.poll_interval,
            policy=RetryPolicy(
                max_attempts=config.max_attempts,
                base_delay=config.retry_delay,
                max_delay=config.retry_max_delay,
            ),
        )
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def limiter(self) -> PictureRateLimiter:
        return self.fetcher.ctx.limiter

    def start(self) -> None:
        self._spawn(self._claim_loop(), "claim")
        self._spawn(self._refresh_loop(), "refresh")

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(coro, name=f"avatars-{what}-{self.session_name}")
        task.add_done_callback(self._log_crash)
        self._tasks.append(task)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("avatar worker of %s stopped", self.session_name, exc_info=task.exception())

    def wake(self) -> None:
        """New jobs were queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Let the job in hand finish (up to `grace` seconds), then stop."""
        self._stop.set()
        self._wake.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()  # run_job gives an interrupted job back at once
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _idle(self, seconds: float) -> None:
        """Sleep until woken, stopped or `seconds` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _until_stopped(self, coro: Coroutine[Any, Any, None]) -> bool:
        """Run `coro` unless stop comes first; True if it completed."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopper):
                if not t.done():
                    t.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
        return task.done() and not task.cancelled() and task.exception() is None

    # Jobs.

    async def _claim_loop(self) -> None:
        while not self._stop.is_set():
            if self.engine.status is not SessionStatus.CONNECTED:
                self._wake.clear()  # new jobs cannot help while offline
                await self._idle(self.config.poll_interval)
                continue
            if not await self._until_stopped(self.limiter.wait_ready()):
                return
            self._wake.clear()  # before looking, so a wake-up meanwhile is not lost
            try:
                job = await asyncio.to_thread(self._claim)
                if job is not None:
                    await self.runner.run_job(job)
            except Exception:
                # The database is down or busy: the job's lease expires and it comes
                # back; this worker carries on once the database does.
                log.exception(
                    "avatar worker of %s: claiming or recording failed", self.session_name
                )
                job = None
            if job is None:
                await self._idle(self.config.poll_interval)

    def _claim(self) -> J.Job | None:
        with self.db.write() as conn:
            got = J.claim(
                conn,
                (KIND,),
                self.runner.owner,
                lease_seconds=self.config.lease_seconds,
                session_id=self.session_id,
            )
        return got[0] if got else None

    async def _handle(self, job: J.Job) -> JobOutcome:
        jid = str(job.payload.get("jid") or job.unique_key or "")
        try:
            result = await self.fetcher.check(jid)
        except DomainError as invalid:  # a job naming no valid JID: no try will fix it
            return Retry(str(invalid), permanent=True)
        now = time.time()
        match result.outcome:
            case Outcome.NEW | Outcome.UNCHANGED | Outcome.NONE:
                return Done()
            case Outcome.RATE_LIMITED:
                wait = result.retry_after or self.config.rate_limit_pause
                return Defer(now + wait, f"rate limited by WhatsApp; paused {wait:.0f}s")
        if result.failure is Failure.OFFLINE:
            reason = f"waiting for the session: {result.error}"
            return Defer(now + self.config.poll_interval, reason)
        error = result.error or "unknown error"
        return Retry(error, permanent=result.failure is Failure.PERMANENT)

    # Refresh.

    async def _refresh_loop(self) -> None:
        catch_up = True  # rows from before the worker ran (or whose job failed): once
        while not self._stop.is_set():
            try:
                added = await asyncio.to_thread(self.refresh_once, catch_up=catch_up)
                catch_up = False
                if added:
                    self.wake()
            except Exception:
                log.exception("avatar refresh of %s failed; will look again", self.session_name)
            await self._sleep_unless_stopped(self.config.refresh_every)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def refresh_budget(self) -> int:
        """Jobs the pace can serve before the next look, doubled for slack."""
        interval = self.limiter.pace.interval
        return max(10, 2 * math.ceil(self.config.refresh_every / interval))

    def refresh_once(self, *, catch_up: bool = False, now: float | None = None) -> int:
        """Queue stale pictures (and, with `catch_up`, never-checked ones); returns how many.

        Also forgets checks that finished long ago (`enqueue.DONE_RETENTION`).
        """
        now = time.time() if now is None else now
        cfg = self.config
        added = 0
        with self.db.write() as conn:
            prune_done(conn, self.session_id, now)
            if catch_up:
                unchecked = records.never_checked(conn, self.session_id)
                added += enqueue_avatars(
                    conn, self.session_id, unchecked, Reason.NEW, max_attempts=cfg.max_attempts
                )
            room = self.refresh_budget() - pending_count(conn, self.session_id)
            if room > 0:
                stale = records.stale_jids(
                    conn,
                    self.session_id,
                    now=now,
                    ttl=cfg.refresh_ttl,
                    none_ttl=cfg.none_ttl,
                    limit=room,
                    failed_kind=KIND,
                )
                added += enqueue_avatars(
                    conn, self.session_id, stale, Reason.REFRESH, max_attempts=cfg.max_attempts
                )
        return added
