"""Picture checks as a job kind: the handler, the readiness check, and the refresh.

The runner (jobs/runner.py) claims an avatar job of a session only when a request
could go out now (`ready`: the session's limiter is ready and its engine connected),
so a claimed job never sits in `running` through a pause. Each session keeps its own
limiter and fetcher (`SessionAvatars`) for as long as this process runs it.

Outcomes map to the queue's decisions:
- new, unchanged, none: done;
- rate limited: deferred to the end of the pause, not counted as a try;
- session offline: deferred, not counted;
- transient failure: retried with exponential back-off and jitter, then failed;
- permanent failure (not an image, too large): failed at once, visible with why.

The refresh re-queues pictures whose last check is older than the TTL, oldest first,
only as many as each session's pace can serve before the next look. One task does it
for every session of the process, once per `refresh_every`: an idle session costs
nothing in between.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from wasync.avatars import records
from wasync.avatars.config import AvatarConfig
from wasync.avatars.enqueue import KIND, Reason, enqueue_avatars, prune_done
from wasync.avatars.fetch import AvatarFetcher, Failure, Outcome
from wasync.avatars.pace import PictureRateLimiter
from wasync.domain.events import SessionStatus
from wasync.engines.base import Engine
from wasync.errors import DomainError
from wasync.jobs import queries as queue
from wasync.jobs.outcome import Defer, Done, JobOutcome, Retry
from wasync.store import identities
from wasync.store.db import Database


@dataclass(eq=False, slots=True)
class SessionAvatars:
    """One running session's picture state: its limiter and fetcher."""

    db: Database
    session_id: int
    session_name: str
    engine: Engine
    fetcher: AvatarFetcher
    config: AvatarConfig

    @property
    def limiter(self) -> PictureRateLimiter:
        return self.fetcher.ctx.limiter

    def ready_in(self) -> float:
        """Seconds until a request could go out (inf while the session is offline)."""
        if self.engine.status is not SessionStatus.CONNECTED:
            return math.inf
        return self.limiter.ready_in()

    async def handle(self, job: queue.Job) -> JobOutcome:
        jid = str(job.payload.get("jid") or job.unique_key or "")
        try:
            jid, checked = await asyncio.to_thread(self._person, jid)  # by LID once known
            if checked and job.payload.get("reason") == Reason.NEW.value:
                # A first check queued under one form of a person, done meanwhile under
                # the other (a merge joined them): asking again would fetch it twice.
                return Done()
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

    def _person(self, jid: str) -> tuple[str, bool]:
        """The person's key, and whether their picture was checked already."""
        with self.db.read() as conn:
            key = identities.canonical(conn, self.session_id, jid)
            return key, not records.unchecked_among(conn, self.session_id, [key])

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
            room = self.refresh_budget() - queue.pending_count(conn, KIND, self.session_id)
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
