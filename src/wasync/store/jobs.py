"""The durable jobs queue: one table for avatar fetches, history requests, deliveries.

- Enqueue deduplicates: at most one queued-or-running job per (kind, session,
  unique_key), enforced by a partial unique index, so enqueueing twice is harmless.
- Claiming is one statement (`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
  RETURNING`; on SQLite the same inside a `BEGIN IMMEDIATE` write transaction).
- A claim is a lease: a worker that dies stops renewing it, and once it expires the
  job can be claimed again. Completing or failing checks the lease owner, so a
  worker that lost its lease cannot overwrite the new owner's outcome.
- Failures are retried by a `RetryPolicy` decision; a job that gives up becomes
  `failed` and stays visible (counts, recent errors, manual retry).
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, text, update

from wasync.store.retry import RetryDecision
from wasync.store.schema import jobs
from wasync.store.upsert import insert_for


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


PENDING = (JobState.QUEUED.value, JobState.RUNNING.value)
# Must equal the predicate of the partial unique index uq_jobs_pending_key (schema.py);
# a literal, because bound parameters cannot be used in an executemany conflict target.
_PENDING_PREDICATE = text("state IN ('queued', 'running')")


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    session_id: int | None
    unique_key: str | None
    payload: dict[str, Any]
    state: str
    priority: int
    run_at: float
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: float | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        return cls(
            id=m["id"],
            kind=m["kind"],
            session_id=m["session_id"],
            unique_key=m["unique_key"],
            payload=json.loads(m["payload"] or "{}"),
            state=m["state"],
            priority=m["priority"],
            run_at=m["run_at"],
            attempts=m["attempts"],
            max_attempts=m["max_attempts"],
            lease_owner=m["lease_owner"],
            lease_expires_at=m["lease_expires_at"],
            last_error=m["last_error"],
        )


def enqueue(
    conn: Connection,
    kind: str,
    *,
    session_id: int | None,
    unique_key: str | None = None,
    payload: dict[str, Any] | None = None,
    run_at: float | None = None,
    priority: int = 0,
    max_attempts: int = 10,
    now: float | None = None,
) -> int | None:
    """Add a job; returns its id, or None when an equal job is already pending."""
    now = time.time() if now is None else now
    row = {
        "kind": kind,
        "session_id": session_id,
        "unique_key": unique_key,
        "payload": json.dumps(payload or {}, separators=(",", ":"), sort_keys=True),
        "state": JobState.QUEUED.value,
        "priority": priority,
        "run_at": now if run_at is None else run_at,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
        "updated_at": now,
    }
    stmt = (
        insert_for(conn, jobs)
        .values(row)
        .on_conflict_do_nothing(
            index_elements=["kind", "session_id", "unique_key"],
            index_where=_PENDING_PREDICATE,
        )
        .returning(jobs.c.id)
    )
    found = conn.execute(stmt).scalar_one_or_none()
    return int(found) if found is not None else None


def enqueue_many(
    conn: Connection,
    kind: str,
    *,
    session_id: int | None,
    keys_and_payloads: list[tuple[str, dict[str, Any]]],
    priority: int = 0,
    max_attempts: int = 10,
    now: float | None = None,
) -> int:
    """Bulk enqueue with dedup; returns how many were new."""
    if not keys_and_payloads:
        return 0
    now = time.time() if now is None else now
    rows = [
        {
            "kind": kind,
            "session_id": session_id,
            "unique_key": key,
            "payload": json.dumps(payload, separators=(",", ":"), sort_keys=True),
            "state": JobState.QUEUED.value,
            "priority": priority,
            "run_at": now,
            "attempts": 0,
            "max_attempts": max_attempts,
            "created_at": now,
            "updated_at": now,
        }
        for key, payload in keys_and_payloads
    ]
    stmt = (
        insert_for(conn, jobs)
        .on_conflict_do_nothing(
            index_elements=["kind", "session_id", "unique_key"],
            index_where=_PENDING_PREDICATE,
        )
        .returning(jobs.c.id)
    )
    # RETURNING with ON CONFLICT DO NOTHING yields only the rows really inserted.
    return len(conn.execute(stmt, rows).all())


def claim(
    conn: Connection,
    kinds: list[str] | tuple[str, ...],
    owner: str,
    *,
    lease_seconds: float = 60.0,
    limit: int = 1,
    session_id: int | None = None,
    now: float | None = None,
) -> list[Job]:
    """Lease up to `limit` due jobs of `kinds` (queued and due, or with an expired lease).

    Call inside a write transaction (`db.write()`); commit to make the claim visible.
    """
    now = time.time() if now is None else now
    j = jobs.c
    _expire_exhausted(conn, kinds, session_id, now)
    due = or_(
        and_(j.state == JobState.QUEUED.value, j.run_at <= now),
        and_(j.state == JobState.RUNNING.value, j.lease_expires_at < now),
    )
    pick = select(j.id).where(due, j.kind.in_(list(kinds)))
    if session_id is not None:
        pick = pick.where(j.session_id == session_id)
    pick = pick.order_by(j.priority.desc(), j.run_at, j.id).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(jobs)
        .where(j.id.in_(pick.scalar_subquery()))
        .values(
            state=JobState.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=now + lease_seconds,
            attempts=j.attempts + 1,
            updated_at=now,
        )
        .returning(*jobs.c)
    )
    claimed = [Job.from_row(r) for r in conn.execute(stmt)]
    claimed.sort(key=lambda job: (-job.priority, job.run_at, job.id))
    return claimed


def _expire_exhausted(
    conn: Connection, kinds: list[str] | tuple[str, ...], session_id: int | None, now: float
) -> None:
    """A job whose lease expired after its last allowed try fails instead of looping."""
    j = jobs.c
    stmt = (
        update(jobs)
        .where(
            j.state == JobState.RUNNING.value,
            j.lease_expires_at < now,
            j.attempts >= j.max_attempts,
            j.kind.in_(list(kinds)),
        )
        .values(
            state=JobState.FAILED.value,
            last_error=func.coalesce(j.last_error, "worker lost its lease"),
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    if session_id is not None:
        stmt = stmt.where(j.session_id == session_id)
    conn.execute(stmt)


def _owned(job_id: int, owner: str) -> Any:
    return and_(
        jobs.c.id == job_id,
        jobs.c.lease_owner == owner,
        jobs.c.state == JobState.RUNNING.value,
    )


def complete(conn: Connection, job_id: int, owner: str, *, now: float | None = None) -> bool:
    """Mark done; False when the lease was lost (another worker owns the job now)."""
    now = time.time() if now is None else now
    res = conn.execute(
        update(jobs)
        .where(_owned(job_id, owner))
        .values(
            state=JobState.DONE.value,
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return res.rowcount == 1


def fail(
    conn: Connection,
    job_id: int,
    owner: str,
    error: str,
    decision: RetryDecision,
    *,
    now: float | None = None,
) -> bool:
    """Record a failed try: requeue at `decision.retry_at`, or fail for good."""
    now = time.time() if now is None else now
    values: dict[str, Any] = {
        "last_error": error[:2000],
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if decision.retry_at is None:
        values |= {"state": JobState.FAILED.value, "finished_at": now}
    else:
        values |= {"state": JobState.QUEUED.value, "run_at": decision.retry_at}
    res = conn.execute(update(jobs).where(_owned(job_id, owner)).values(**values))
    return res.rowcount == 1


def defer(
    conn: Connection,
    job_id: int,
    owner: str,
    run_at: float,
    *,
    reason: str | None = None,
    now: float | None = None,
) -> bool:
    """Put a job back without counting the try (rate limits, pauses): nothing is lost."""
    now = time.time() if now is None else now
    values: dict[str, Any] = {
        "state": JobState.QUEUED.value,
        "run_at": run_at,
        "attempts": jobs.c.attempts - 1,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if reason is not None:
        values["last_error"] = reason[:2000]
    res = conn.execute(update(jobs).where(_owned(job_id, owner)).values(**values))
    return res.rowcount == 1


def heartbeat(
    conn: Connection, job_id: int, owner: str, lease_seconds: float, *, now: float | None = None
) -> bool:
    """Extend a lease; False when it was lost."""
    now = time.time() if now is None else now
    res = conn.execute(
        update(jobs)
        .where(_owned(job_id, owner))
        .values(lease_expires_at=now + lease_seconds, updated_at=now)
    )
    return res.rowcount == 1


def retry_failed(conn: Connection, job_id: int, *, now: float | None = None) -> bool:
    """Manually requeue a failed job (dead letter) with a fresh attempt budget."""
    now = time.time() if now is None else now
    res = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.FAILED.value)
        .values(
            state=JobState.QUEUED.value, attempts=0, run_at=now, updated_at=now, finished_at=None
        )
    )
    return res.rowcount == 1


def get_job(conn: Connection, job_id: int) -> Job | None:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
    return Job.from_row(row) if row is not None else None


def counts(
    conn: Connection, *, kind: str | None = None, session_id: int | None = None
) -> dict[str, dict[str, int]]:
    """{kind: {state: n}} with every state present (zero when empty)."""
    stmt = select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
    if kind is not None:
        stmt = stmt.where(jobs.c.kind == kind)
    if session_id is not None:
        stmt = stmt.where(jobs.c.session_id == session_id)
    out: dict[str, dict[str, int]] = {}
    for k, state, n in conn.execute(stmt):
        out.setdefault(k, {s.value: 0 for s in JobState})[state] = int(n)
    if kind is not None:
        out.setdefault(kind, {s.value: 0 for s in JobState})
    return out


def recent_errors(
    conn: Connection, *, kind: str | None = None, session_id: int | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    stmt = (
        select(
            jobs.c.id,
            jobs.c.kind,
            jobs.c.unique_key,
            jobs.c.state,
            jobs.c.attempts,
            jobs.c.last_error,
            jobs.c.updated_at,
        )
        .where(jobs.c.last_error.is_not(None))
        .order_by(jobs.c.updated_at.desc())
        .limit(limit)
    )
    if kind is not None:
        stmt = stmt.where(jobs.c.kind == kind)
    if session_id is not None:
        stmt = stmt.where(jobs.c.session_id == session_id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def prune_done(conn: Connection, older_than: float) -> int:
    """Delete finished jobs older than a cut-off (the table is a queue, not an archive)."""
    res = conn.execute(
        jobs.delete().where(
            jobs.c.state == JobState.DONE.value, jobs.c.finished_at < bindparam("cut")
        ),
        {"cut": older_than},
    )
    return int(res.rowcount)


__all__ = [
    "PENDING",
    "Job",
    "JobState",
    "claim",
    "complete",
    "counts",
    "defer",
    "enqueue",
    "enqueue_many",
    "fail",
    "get_job",
    "heartbeat",
    "prune_done",
    "recent_errors",
    "retry_failed",
]
