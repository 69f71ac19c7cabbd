"""A failed history request: what the chat shows, what the event says, when to retry.

- Not connected: wait for the connection without counting a try.
- A transient error after this claim made progress: step back briefly, uncounted
  (failures count from the last page, so a long backfill over a flaky link goes on).
- A transient error otherwise: a counted try; the runner's policy backs off
  exponentially with jitter and gives up after `max_attempts`.
- A permanent error (the engine cannot do it, the chat is unknown): give up now.

Every counted failure is written to the chat's sync state (`last_error`), and a gap
that is given up on is marked `failed`, so nothing fails silently.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Connection

from wasync.engines.base import EngineError, NotConnected, RateLimited, TransientEngineError
from wasync.history import gaps
from wasync.history.context import HistoryContext
from wasync.history.progress import HistoryProgress
from wasync.jobs.outcome import Defer, Retry
from wasync.jobs.outcome import JobOutcome as Outcome
from wasync.jobs.queries import Job
from wasync.store.writes import mark_chat_error

log = logging.getLogger(__name__)

LABELS = {"older": "loading older history", "full": "loading the full history", "gap": "gap fill"}


def as_engine_error(exc: Exception) -> EngineError:
    """What an engine call raised, as an EngineError. Anything else (a bug, an OSError)
    becomes a transient one, logged with its traceback, so that it is recorded and
    retried like any failure and never leaves a gap silently "filling". Call it from
    the `except` block."""
    if isinstance(exc, EngineError):
        return exc
    log.exception("history request failed unexpectedly")
    return TransientEngineError(f"unexpected {type(exc).__name__}: {exc}")


async def on_failure(
    ctx: HistoryContext,
    job: Job,
    progress: HistoryProgress,
    exc: EngineError,
    *,
    progressed: bool,
) -> Outcome:
    now = time.time()
    if isinstance(exc, NotConnected):
        return Defer(now + ctx.options.retry_delay, "waiting for the connection")
    text = str(exc) or type(exc).__name__
    label = LABELS.get(progress.kind, "history")
    permanent = not exc.transient
    outcome: Outcome
    if progressed and not permanent:
        final = False
        outcome = Defer(now + ctx.options.policy.delay(1), text)
        note = f"{label} failed, retrying: {text}"
    else:
        final = permanent or job.attempts >= job.max_attempts
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        outcome = Retry(text, retry_after=retry_after, permanent=permanent)
        if permanent:
            note = f"{label} failed: {text}"
        elif final:
            note = f"{label} gave up after {job.attempts} tries: {text}"
        else:
            note = f"{label} failed (try {job.attempts} of {job.max_attempts}, retrying): {text}"
    log.warning("session %s, chat %s: %s", ctx.session_name, progress.chat_jid, note)

    def record(conn: Connection) -> None:
        mark_chat_error(conn, ctx.session_id, progress.chat_jid, note, int(now))
        if progress.kind == "gap" and final:
            gaps.set_status(conn, ctx.session_id, [progress.chat_jid], gaps.FAILED)

    def write() -> None:
        with ctx.writing() as conn:
            record(conn)

    await asyncio.to_thread(write)
    await ctx.emit(
        HistoryProgress(
            progress.chat_jid,
            progress.kind,
            progress.job_id,
            progress.page,
            progress.messages_synced,
            progress.fully_synced,
            done=final,
            error=note,
            will_retry=not final,
        )
    )
    return outcome
