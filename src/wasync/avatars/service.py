"""The avatar feature as a runtime service: the `avatar` job kind, on-demand checks.

Each session whose engine can fetch pictures gets its own limiter and fetcher
(`SessionAvatars`) when it is added, and loses them when it is removed. The limiter
lives in this process: a session runs in one process at a time (sessions/ownership.py),
so that is where its requests are counted, and the rate holds whichever node runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import httpx

from wasync.avatars import records
from wasync.avatars.config import AvatarConfig
from wasync.avatars.enqueue import KIND, Reason, batch_hook, enqueue_avatars, enqueue_session
from wasync.avatars.fetch import AvatarFetcher, AvatarResult, Failure, Outcome, SessionContext
from wasync.avatars.pace import PictureRateLimiter
from wasync.avatars.storage import AvatarStorage
from wasync.avatars.worker import SessionAvatars
from wasync.engines.base import CapabilityMissing
from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import JobOutcome, Retry
from wasync.jobs.policy import RetryPolicy
from wasync.jobs.queries import Job
from wasync.store import identities
from wasync.sync.hooks import TransactionHook

if TYPE_CHECKING:
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)


class AvatarsUnavailable(CapabilityMissing):
    """Pictures cannot be fetched for this session (switched off, or the engine cannot)."""


class AvatarService:
    def __init__(self, config: AvatarConfig) -> None:
        self.config = config
        self.storage: AvatarStorage | None = None
        self.workers: dict[str, SessionAvatars] = {}
        self._by_id: dict[int, SessionAvatars] = {}
        self._runtime: Runtime | None = None
        self._http: httpx.AsyncClient | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._caught_up: set[int] = set()

    @property
    def hook(self) -> TransactionHook:
        return batch_hook(self.config.max_attempts)

    # Service protocol.

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.storage = AvatarStorage(runtime.media)  # the runtime's: shared by nodes or not
        # trust_env=False: picture URLs go straight to WhatsApp's CDN (or the loopback
        # simulator), never through a proxy picked up from the environment.
        self._http = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=True,
            timeout=httpx.Timeout(self.config.download_timeout),
        )
        if self.config.enabled:
            cfg = self.config
            runtime.jobs.register(
                JobKind(
                    KIND,
                    self._handle,
                    policy=RetryPolicy(
                        max_attempts=cfg.max_attempts,
                        base_delay=cfg.retry_delay,
                        max_delay=cfg.retry_max_delay,
                    ),
                    lease_seconds=cfg.lease_seconds,
                    ready=self._ready,
                )
            )
            self._refresh = asyncio.create_task(self._refresh_loop(), name="avatar-refresh")

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
            self._refresh = None
        for name in list(self.workers):
            await self._drop(name)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # The job kind.

    def _ready(self, session_id: int) -> float:
        found = self._by_id.get(session_id)
        return found.ready_in() if found is not None else float("inf")

    async def _handle(self, job: Job) -> JobOutcome:
        found = self._by_id.get(job.session_id) if job.session_id is not None else None
        if found is None:  # pragma: no cover - the runner claims only for our sessions
            return Retry("the session is not running here")
        return await found.handle(job)

    async def _refresh_loop(self) -> None:
        """Every `refresh_every` seconds, queue each session's stale pictures (and, the
        first time, the never-checked ones): one look for the whole process."""
        while True:
            for worker in list(self.workers.values()):
                catch_up = worker.session_id not in self._caught_up
                try:
                    await asyncio.to_thread(worker.refresh_once, catch_up=catch_up)
                    self._caught_up.add(worker.session_id)
                except Exception:
                    log.exception("avatar refresh of %s failed", worker.session_name)
            await asyncio.sleep(self.config.refresh_every)

    async def session_added(self, handle: SessionHandle) -> None:
        if not self.config.enabled:
            return
        if not handle.engine.capabilities.profile_pictures:
            log.info("session %s: this engine cannot fetch profile pictures", handle.name)
            return
        runtime, storage, http = self._runtime, self.storage, self._http
        assert runtime is not None and storage is not None and http is not None, "not started"
        cfg = self.config
        limiter = PictureRateLimiter(
            cfg.pace_for(handle.name),
            rng=random.Random(),
            pause_base=cfg.rate_limit_pause,
            pause_max=cfg.rate_limit_pause_max,
        )
        limiter.on_resume = runtime.jobs.wake  # its jobs were waiting for the pause to end
        # A 429 from before a restart still holds: WhatsApp's clock did not restart.
        until = await asyncio.to_thread(self._paused_until, runtime, handle.session_id)
        if until is not None and until > time.time():
            limiter.pause(until - time.time())
        ctx = SessionContext(
            runtime.db,
            handle.session_id,
            handle.name,
            handle.engine,
            storage,
            http,
            limiter,
            cfg,
            runtime.outbox,
            runtime.bus,
            handle.write,
        )
        worker = SessionAvatars(
            runtime.db, handle.session_id, handle.name, handle.engine, AvatarFetcher(ctx), cfg
        )
        self.workers[handle.name] = worker
        self._by_id[handle.session_id] = worker
        if self._refresh is not None and handle.session_id not in self._caught_up:
            # Rows from before this process ran the session: queue them at once.
            try:
                await asyncio.to_thread(worker.refresh_once, catch_up=True)
                self._caught_up.add(handle.session_id)
            except Exception:
                log.exception("avatar catch-up of %s failed", handle.name)
        runtime.jobs.wake()

    @staticmethod
    def _paused_until(runtime: Runtime, session_id: int) -> float | None:
        with runtime.db.read() as conn:
            return records.paused_until(conn, session_id)

    async def session_removed(self, handle: SessionHandle) -> None:
        await self._drop(handle.name)

    async def _drop(self, name: str) -> None:
        worker = self.workers.pop(name, None)
        if worker is not None:
            self._by_id.pop(worker.session_id, None)
            self._caught_up.discard(worker.session_id)

    # What the API and tools call.

    def worker(self, session: str) -> SessionAvatars:
        runtime = self._runtime
        if runtime is None:
            raise AvatarsUnavailable("the avatar service is not started")
        handle = runtime.session(session)  # SessionNotFound when not running
        worker = self.workers.get(handle.name)
        if worker is not None:
            return worker
        if not self.config.enabled:
            raise AvatarsUnavailable(
                "profile pictures are switched off (WASYNC_AVATAR_WORKER=false)"
            )
        raise AvatarsUnavailable(f"the engine of session {session!r} cannot fetch pictures")

    async def check_now(self, session: str, jid: str) -> tuple[AvatarResult, bool]:
        """Check one JID now, through the session's limiter; returns (result, queued).

        When the session is paused by a 429 this answers `rate_limited` at once instead
        of waiting out the pause. Whatever could not be done now (rate limited, offline,
        a transient failure) is queued, so it happens later without asking again.
        """
        worker = self.worker(session)
        jid = await asyncio.to_thread(self._person, worker, jid)
        paused = worker.limiter.paused_for
        if paused > 0:
            result = AvatarResult(
                jid,
                Outcome.RATE_LIMITED,
                error="picture requests of this session are paused after a 429",
                retry_after=paused,
            )
        else:
            result = await worker.fetcher.check(jid)
        queued = False
        if result.outcome is Outcome.RATE_LIMITED or result.failure in (
            Failure.TRANSIENT,
            Failure.OFFLINE,
        ):
            queued = await asyncio.to_thread(self._enqueue_one, worker, result.jid)
        return result, queued

    @staticmethod
    def _person(worker: SessionAvatars, jid: str) -> str:
        """Pictures are per person: a LID, a phone JID or a number is one check."""
        with worker.db.read() as conn:
            return identities.canonical(conn, worker.session_id, jid)

    def _enqueue_one(self, worker: SessionAvatars, jid: str) -> bool:
        with worker.db.write() as conn:
            enqueue_avatars(
                conn,
                worker.session_id,
                [jid],
                Reason.MANUAL,
                max_attempts=self.config.max_attempts,
            )
        return True

    async def enqueue_all(self, session: str) -> int:
        """Queue every contact and chat of a running session; returns how many are new."""
        worker = self.worker(session)

        def run() -> int:
            with worker.db.write() as conn:
                added, _ = enqueue_session(
                    conn, worker.session_id, max_attempts=self.config.max_attempts
                )
            return added

        return await asyncio.to_thread(run)

    def queue_stats(self) -> dict[str, Any]:
        """Live figures for the queues dashboard (no I/O: called from request handlers)."""
        sessions: dict[str, Any] = {}
        totals = {o.value: 0 for o in Outcome}
        for name, worker in self.workers.items():
            limiter = worker.limiter
            outcomes = dict(worker.fetcher.outcomes)
            for key, n in outcomes.items():
                totals[key] += n
            sessions[name] = {
                "configuredRate": limiter.pace.rate,
                "currentRate": round(limiter.current_rate(), 4),
                "interval": limiter.pace.interval,
                "minGap": limiter.pace.min_gap,
                "maxGap": limiter.pace.max_gap,
                "pausedFor": round(limiter.paused_for, 3),
                "requests": limiter.granted,
                "outcomes": outcomes,
            }
        pace = self.config.pace
        return {
            "enabled": self.config.enabled,
            "configuredRate": pace.rate,
            "currentRate": round(sum(s["currentRate"] for s in sessions.values()), 4),
            "none": totals[Outcome.NONE.value],
            "outcomes": totals,
            "sessions": sessions,
        }


def avatar_service(runtime: Runtime) -> AvatarService:
    for service in runtime.services:
        if isinstance(service, AvatarService):
            return service
    raise AvatarsUnavailable("profile pictures are not installed in this runtime")
