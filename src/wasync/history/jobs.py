"""History work as job kinds: the handlers, and which session's context each job runs in.

The three kinds share one budget per session (the phone answers one history request
at a time): the runner claims the most urgent of them first (priority: the gap scan,
then gap fills, then older history), and a long backfill runs in slices so that gap
fill never waits behind it for long.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from wasync.history.backfill import run_backfill
from wasync.history.context import HistoryContext
from wasync.history.gapfill import run_gap_fill, run_gap_scan
from wasync.history.kinds import BACKFILL, GAP_FILL, GAP_SCAN
from wasync.history.options import HistoryOptions
from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import JobOutcome, Retry
from wasync.jobs.queries import Job

BUDGET = "history"

_HANDLERS: dict[str, Callable[[HistoryContext, Job], Awaitable[JobOutcome]]] = {
    BACKFILL: run_backfill,
    GAP_SCAN: run_gap_scan,
    GAP_FILL: run_gap_fill,
}


def history_kinds(
    kinds: tuple[str, ...],
    options: HistoryOptions,
    context_of: Callable[[int], HistoryContext | None],
) -> list[JobKind]:
    """The job kinds to register; `context_of(session_id)` finds a running session's."""

    async def handle(job: Job) -> JobOutcome:
        ctx = context_of(job.session_id) if job.session_id is not None else None
        handler = _HANDLERS.get(job.kind)
        if handler is None:
            return Retry(f"unknown history job kind {job.kind!r}", permanent=True)
        if ctx is None:  # pragma: no cover - the runner claims only for running sessions
            return Retry("the session is not running here")
        return await handler(ctx, job)

    return [
        JobKind(
            kind,
            handle,
            policy=options.policy,
            lease_seconds=options.lease_seconds,
            group=BUDGET,
        )
        for kind in kinds
    ]
