"""One session's history worker: a JobRunner over the history job kinds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wasync.engines.base import Engine
from wasync.history import jobrows
from wasync.history.backfill import run_backfill
from wasync.history.context import HistoryContext
from wasync.history.gapfill import run_gap_fill, run_gap_scan
from wasync.history.hook import ReplayTracker
from wasync.history.kinds import BACKFILL, GAP_FILL, GAP_SCAN, KINDS
from wasync.history.options import HistoryOptions
from wasync.history.progress import ProgressListener
from wasync.store import jobs as J
from wasync.store.db import Database
from wasync.sync.hooks import Hooks
from wasync.workers.runner import JobRunner, Outcome, Retry

log = logging.getLogger(__name__)


class HistoryWorker:
    """Runs a session's history jobs one at a time (the phone answers one by one)."""

    def __init__(
        self,
        db: Database,
        session_id: int,
        session_name: str,
        engine: Engine,
        *,
        options: HistoryOptions | None = None,
        hooks: Hooks = (),
        replay: ReplayTracker | None = None,
        on_progress: ProgressListener | None = None,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.options = options or HistoryOptions()
        self.kinds = kinds
        self.runner = JobRunner(
            db,
            kinds,
            self._handle,
            name=f"history-{session_name}",
            session_id=session_id,
            lease_seconds=self.options.lease_seconds,
            poll_interval=self.options.poll_interval,
            policy=self.options.policy,
        )
        self.context = HistoryContext(
            db,
            session_id,
            session_name,
            engine,
            self.options,
            self.runner.owner,
            tuple(hooks),
            replay,
            on_progress,
        )

    async def start(self) -> None:
        ctx = self.context

        def release() -> int:
            with ctx.db.write() as conn:
                return jobrows.release_dead_leases(conn, self.kinds, ctx.session_id)

        released = await asyncio.to_thread(release)
        if released:
            log.info(
                "session %s: resuming %d history job(s) of a stopped process",
                ctx.session_name,
                released,
            )
        self.runner.start()

    def wake(self) -> None:
        self.runner.wake()

    async def stop(self) -> None:
        await self.runner.stop()

    async def _handle(self, job: J.Job) -> Outcome:
        handler = _HANDLERS.get(job.kind)
        if handler is None:
            return Retry(f"unknown history job kind {job.kind!r}", permanent=True)
        return await handler(self.context, job)


_HANDLERS: dict[str, Callable[[HistoryContext, J.Job], Awaitable[Outcome]]] = {
    BACKFILL: run_backfill,
    GAP_SCAN: run_gap_scan,
    GAP_FILL: run_gap_fill,
}
