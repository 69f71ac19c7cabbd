"""Every statement on the `jobs` table: avatar checks, history work, deliveries, commands.

Features call these named functions; none of them queries the table itself.

- Enqueue deduplicates: at most one queued-or-running job per (kind, session,
  unique_key), enforced by a partial unique index, so enqueueing twice is harmless.
- Claiming is one statement (`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
  RETURNING`; on SQLite the same inside a `BEGIN IMMEDIATE` write transaction), for
  one (kind, session) at a time so that every session gets its share.
- A claim is a lease: a worker that dies stops renewing it, and once it expires the
  job can be claimed again. Completing or failing checks the lease owner, so a
  worker that lost its lease cannot overwrite the new owner's outcome.
- `target` names what a job acts on (a delivery's endpoint): the runner caps how many
  jobs of one target run at once, so one slow target cannot take every slot.
- Failures are retried by a `RetryPolicy` decision; a job that gives up becomes
  `failed` and stays visible (counts, recent errors, manual retry).
"""

from __future__ import annotations

import enum
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from wasync import jsonbytes
from wasync.jobs import wakeups
from wasync.jobs.policy import RetryDecision
from wasync.store.schema import jobs
from wasync.store.statements import Upsert
from wasync.store.upsert import insert_for


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


PENDING = (JobState.QUEUED.value, JobState.RUNNING.value)
FINISHED = (JobState.DONE.value, JobState.FAILED.value)
# Must equal the predicate of the partial unique index uq_jobs_pending_key (schema.py);
# a literal, because bound parameters cannot be used in an executemany conflict target.
_PENDING_PREDICATE = text("state IN ('queued', 'running')")
_CHUNK = 500  # keys per IN (...) list: well under every driver's parameter limit
_j = jobs.c


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    session_id: int | None
    unique_key: str | None
    target: str | None
    payload: dict[str, Any]
    state: str
    priority: int
    run_at: float
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: float | None
    last_error: str | None
    updated_at: float = 0.0
    result: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        result = m.get("result")
        return cls(
            id=m["id"],
            kind=m["kind"],
            session_id=m["session_id"],
            unique_key=m["unique_key"],
            target=m["target"],
            payload=json.loads(m["payload"] or "{}"),
            state=m["state"],
            priority=m["priority"],
            run_at=m["run_at"],
            attempts=m["attempts"],
            max_attempts=m["max_attempts"],
            lease_owner=m["lease_owner"],
            lease_expires_at=m["lease_expires_at"],
            last_error=m["last_error"],
            updated_at=m["updated_at"],
            result=json.loads(result) if result else None,
        )


def _dump(payload: dict[str, Any] | None) -> str:
    return jsonbytes.dumps(payload or {}, sort_keys=True).decode()


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# Enqueueing.


def _row(
    kind: str,
    session_id: int | None,
    key: str | None,
    payload: dict[str, Any] | None,
    *,
    target: str | None,
    max_attempts: int,
    now: float,
    run_at: float | None = None,  # now
    priority: int = 0,
) -> dict[str, Any]:
    run_at = now if run_at is None else run_at
    return {
        "kind": kind,
        "session_id": session_id,
        "unique_key": key,
        "target": target,
        "payload": _dump(payload),
        "state": JobState.QUEUED.value,
        "priority": priority,
        "run_at": run_at,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
        "updated_at": now,
    }


def _insert(conn: Connection) -> Any:
    return (
        insert_for(conn, jobs)
        .on_conflict_do_nothing(
            index_elements=["kind", "session_id", "unique_key"],
            index_where=_PENDING_PREDICATE,
        )
        .returning(_j.id)
    )


def enqueue(
    conn: Connection,
    kind: str,
    *,
    session_id: int | None,
    unique_key: str | None = None,
    payload: dict[str, Any] | None = None,
    target: str | None = None,
    run_at: float | None = None,
    priority: int = 0,
    max_attempts: int = 10,
    now: float | None = None,
) -> int | None:
    """Add a job; returns its id, or None when an equal job is already pending."""
    now = time.time() if now is None else now
    row = _row(
        kind,
        session_id,
        unique_key,
        payload,
        target=target,
        run_at=run_at,
        priority=priority,
        max_attempts=max_attempts,
        now=now,
    )
    found = conn.execute(_insert(conn).values(row)).scalar_one_or_none()
    if found is None:
        return None
    wakeups.enqueued(conn, kind, session_id)
    return int(found)


def enqueue_many(
    conn: Connection,
    kind: str,
    *,
    session_id: int | None,
    keys_and_payloads: Sequence[tuple[str, dict[str, Any]]],
    target_of: Callable[[dict[str, Any]], str | None] | None = None,
    priority: int = 0,
    max_attempts: int = 10,
    now: float | None = None,
) -> int:
    """Bulk enqueue with dedup; returns how many were new."""
    if not keys_and_payloads:
        return 0
    now = time.time() if now is None else now
    state = JobState.QUEUED.value
    rows = [
        (
            kind,
            session_id,
            key,
            target_of(payload) if target_of is not None else None,
            _dump(payload),
            state,
            priority,
            now,
            0,
            max_attempts,
            now,
            now,
        )
        for key, payload in keys_and_payloads
    ]
    # Compiled once (a hot path: every batch's avatar and webhook jobs); a row that
    # conflicts with a pending job is not inserted, and is not counted.
    added = _ENQUEUE_MANY.run(conn, rows)
    if added:
        wakeups.enqueued(conn, kind, session_id)
    return added


_ENQUEUE_MANY = Upsert(
    jobs,
    (
        "kind",
        "session_id",
        "unique_key",
        "target",
        "payload",
        "state",
        "priority",
        "run_at",
        "attempts",
        "max_attempts",
        "created_at",
        "updated_at",
    ),
    keys=("kind", "session_id", "unique_key"),
    index_where=_PENDING_PREDICATE,
)


def enqueue_unless_queued(
    conn: Connection,
    kind: str,
    *,
    target: str,
    session_id: int | None,
    payload: dict[str, Any] | None = None,
    max_attempts: int = 10,
    now: float | None = None,
) -> bool:
    """One job of `kind` for `target`, unless one is queued for it already.

    For a job that works through whatever is waiting for its target when it runs (a
    broker endpoint's pump): one queued is enough. A *running* one does not count: it
    may be ending, having looked before the caller's work was committed. Callers
    serialise on something of the target's (the stream cursor's row lock), so two
    transactions cannot both see none queued and both add one.
    """
    now = time.time() if now is None else now
    queued = conn.execute(
        select(_j.id)
        .where(_j.state == JobState.QUEUED.value, _j.kind == kind, _j.target == target)
        .limit(1)
    ).first()
    if queued is not None:
        return False
    row = _row(kind, session_id, None, payload, target=target, max_attempts=max_attempts, now=now)
    conn.execute(insert(jobs).values(row))
    wakeups.enqueued(conn, kind, session_id)
    return True


def add_failed(
    conn: Connection,
    rows: Sequence[tuple[str, dict[str, Any], str]],
    *,
    kind: str,
    session_id: int | None,
    target: str,
    max_attempts: int,
    now: float | None = None,
) -> int:
    """Record work that failed for good outside the queue as dead letters of `kind`.

    `rows` are (unique key, payload, error). They are listed, retried and
    discarded like any failed job: a retry runs them through the kind's handler.
    """
    if not rows:
        return 0
    now = time.time() if now is None else now
    values = []
    for key, payload, error in rows:
        row = _row(
            kind, session_id, key, payload, target=target, max_attempts=max_attempts, now=now
        )
        row.update(state=JobState.FAILED.value, attempts=1, last_error=error, finished_at=now)
        values.append(row)
    conn.execute(insert(jobs), values)
    return len(values)


def hurry(
    conn: Connection,
    kind: str,
    session_id: int,
    keys: Sequence[str],
    priority: int,
    *,
    now: float,
) -> None:
    """Raise waiting jobs of these keys to `priority` and make them due now."""
    sooner = case((_j.run_at > now, now), else_=_j.run_at)
    for part in _chunks(sorted(keys)):
        conn.execute(
            update(jobs)
            .where(
                _j.kind == kind,
                _j.session_id == session_id,
                _j.unique_key.in_(part),
                _j.state == JobState.QUEUED.value,
                _j.priority < priority,
            )
            .values(priority=priority, run_at=sooner, updated_at=now)
        )
    wakeups.enqueued(conn, kind, session_id)


# Claiming (jobs/runner.py).


def _due(now: float) -> ColumnElement[bool]:
    return or_(
        and_(_j.state == JobState.QUEUED.value, _j.run_at <= now),
        and_(_j.state == JobState.RUNNING.value, _j.lease_expires_at < now),
    )


def claim(
    conn: Connection,
    kinds: Sequence[str],
    owner: str,
    *,
    lease_seconds: float = 60.0,
    limit: int = 1,
    session_id: int | None = None,
    any_session: bool = True,
    exclude_targets: Sequence[str] = (),
    target: str | None = None,
    now: float | None = None,
) -> list[Job]:
    """Lease up to `limit` due jobs of `kinds` (queued and due, or with an expired lease).

    `session_id` limits the claim to one session (with `any_session=False`, a None
    `session_id` means jobs of no session); `target` to one target (a batch's). Call
    inside a write transaction (`db.write()`); commit to make the claim visible.
    """
    now = time.time() if now is None else now
    if target is not None:
        # A batch's rest: queued jobs of one target in the order they were enqueued,
        # read straight off the (state, kind, run_at) index, no sort (batched kinds
        # enqueue without priorities). Expired leases come back through a plain claim.
        pick = (
            select(_j.id)
            .where(
                _j.state == JobState.QUEUED.value,
                _j.kind.in_(list(kinds)),
                _j.run_at <= now,
                _j.target == target,
            )
            .order_by(_j.run_at, _j.id)
            .limit(limit)
        )
        if session_id is not None:
            pick = pick.where(_j.session_id == session_id)
        return _lease(conn, pick, owner, lease_seconds, now)
    _expire_exhausted(conn, kinds, session_id, any_session, now)

    def narrowed(pick: Any) -> Any:
        if session_id is not None:
            pick = pick.where(_j.session_id == session_id)
        elif not any_session:
            pick = pick.where(_j.session_id.is_(None))
        if exclude_targets:
            pick = pick.where(or_(_j.target.is_(None), _j.target.not_in(list(exclude_targets))))
        return pick.order_by(_j.priority.desc(), _j.run_at, _j.id).limit(limit)

    # One pick per kind for the queued jobs, each read in order off ix_jobs_claim_order
    # (one pick over several kinds sorts all their due rows), one for the expired leases
    # (few rows); the first `limit` of them in claim order are leased.
    picks = [
        narrowed(
            select(_j.id, _j.priority, _j.run_at).where(
                _j.state == JobState.QUEUED.value, _j.kind == kind, _j.run_at <= now
            )
        )
        for kind in kinds
    ]
    picks.append(
        narrowed(
            select(_j.id, _j.priority, _j.run_at).where(
                _j.state == JobState.RUNNING.value,
                _j.kind.in_(list(kinds)),
                _j.lease_expires_at < now,
            )
        )
    )
    found: list[tuple[int, int, float]] = []
    for pick in picks:
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        found += [(r.id, r.priority, r.run_at) for r in conn.execute(pick)]
    if not found:
        return []
    found.sort(key=lambda f: (-f[1], f[2], f[0]))
    ids = [f[0] for f in found[:limit]]
    return _lease(conn, select(_j.id).where(_j.id.in_(ids)), owner, lease_seconds, now)


def _lease(conn: Connection, pick: Any, owner: str, lease_seconds: float, now: float) -> list[Job]:
    """Lease the jobs `pick` selects; they come back in claim order."""
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(jobs)
        .where(_j.id.in_(pick.scalar_subquery()))
        .values(
            state=JobState.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=now + lease_seconds,
            attempts=_j.attempts + 1,
            updated_at=now,
        )
        .returning(*jobs.c)
    )
    claimed = [Job.from_row(r) for r in conn.execute(stmt)]
    claimed.sort(key=lambda job: (-job.priority, job.run_at, job.id))
    return claimed


def _expire_exhausted(
    conn: Connection,
    kinds: Sequence[str],
    session_id: int | None,
    any_session: bool,
    now: float,
) -> None:
    """A job whose lease expired after its last allowed try fails instead of looping."""
    stmt = (
        update(jobs)
        .where(
            _j.state == JobState.RUNNING.value,
            _j.lease_expires_at < now,
            _j.attempts >= _j.max_attempts,
            _j.kind.in_(list(kinds)),
        )
        .values(
            state=JobState.FAILED.value,
            last_error=func.coalesce(_j.last_error, "worker lost its lease"),
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    elif not any_session:
        stmt = stmt.where(_j.session_id.is_(None))
    conn.execute(stmt)


def next_due(
    conn: Connection, kind: str, session_id: int | None, owner: str, *, any_session: bool = True
) -> float | None:
    """When the next job of (kind, session) may be claimed: the earliest run_at of a
    queued one, or the lease expiry of one another worker runs; None when there is none."""
    # Two reads, each a seek on an index (state, kind, ...): one over both states
    # scanned every pending row of the kind.
    queued = select(func.min(_j.run_at)).where(_j.state == JobState.QUEUED.value, _j.kind == kind)
    leased = select(func.min(_j.lease_expires_at)).where(
        _j.state == JobState.RUNNING.value, _j.kind == kind, _j.lease_owner != owner
    )
    times: list[float] = []
    for stmt in (queued, leased):
        if session_id is not None:
            stmt = stmt.where(_j.session_id == session_id)
        elif not any_session:
            stmt = stmt.where(_j.session_id.is_(None))
        found = conn.execute(stmt).scalar_one_or_none()
        if found is not None:
            times.append(float(found))
    return min(times, default=None)


def pending_sessions(
    conn: Connection, kinds: Sequence[str], owner: str
) -> list[tuple[str, int | None, float]]:
    """(kind, session, when next due) of every (kind, session) with pending jobs of
    other workers or queued ones: what the runner has to look at after a restart or
    when it may have missed a wake-up."""
    when = case(
        (_j.state == JobState.QUEUED.value, _j.run_at),
        else_=_j.lease_expires_at,
    )
    stmt = (
        select(_j.kind, _j.session_id, func.min(when))
        .where(
            _j.kind.in_(list(kinds)),
            _j.state.in_(PENDING),
            or_(_j.state == JobState.QUEUED.value, _j.lease_owner != owner),
        )
        .group_by(_j.kind, _j.session_id)
    )
    return [(k, s, float(w)) for k, s, w in conn.execute(stmt) if w is not None]


# Recording outcomes.


def _owned(job_id: int, owner: str) -> ColumnElement[bool]:
    return and_(
        _j.id == job_id,
        _j.lease_owner == owner,
        _j.state == JobState.RUNNING.value,
    )


def complete(
    conn: Connection,
    job_id: int,
    owner: str,
    *,
    result: dict[str, Any] | None = None,
    now: float | None = None,
) -> bool:
    """Mark done; False when the lease was lost (another worker owns the job now)."""
    now = time.time() if now is None else now
    values: dict[str, Any] = {
        "state": JobState.DONE.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": None,
        "finished_at": now,
        "updated_at": now,
    }
    if result is not None:
        values["result"] = _dump(result)
    res = conn.execute(update(jobs).where(_owned(job_id, owner)).values(**values))
    return res.rowcount == 1


def _all_owned(job_ids: Sequence[int], owner: str) -> ColumnElement[bool]:
    return and_(
        _j.id.in_(list(job_ids)),
        _j.lease_owner == owner,
        _j.state == JobState.RUNNING.value,
    )


def complete_many(
    conn: Connection, job_ids: Sequence[int], owner: str, *, now: float | None = None
) -> int:
    """Mark a batch's jobs done in one statement per chunk; how many were still ours."""
    now = time.time() if now is None else now
    done = 0
    for chunk in _chunks(job_ids):
        res = conn.execute(
            update(jobs)
            .where(_all_owned(chunk, owner))
            .values(
                state=JobState.DONE.value,
                lease_owner=None,
                lease_expires_at=None,
                last_error=None,
                finished_at=now,
                updated_at=now,
            )
        )
        done += res.rowcount
    return done


def fail(
    conn: Connection,
    job_id: int,
    owner: str,
    error: str,
    decision: RetryDecision,
    *,
    result: dict[str, Any] | None = None,
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
        if result is not None:
            values["result"] = _dump(result)
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
        "attempts": _j.attempts - 1,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if reason is not None:
        values["last_error"] = reason[:2000]
    res = conn.execute(update(jobs).where(_owned(job_id, owner)).values(**values))
    return res.rowcount == 1


def heartbeat(
    conn: Connection,
    job_ids: Sequence[int],
    owner: str,
    lease_seconds: float,
    *,
    now: float | None = None,
) -> set[int]:
    """Extend the leases of these jobs; returns the ids still held."""
    if not job_ids:
        return set()
    now = time.time() if now is None else now
    held = conn.execute(
        update(jobs)
        .where(_all_owned(job_ids, owner))
        .values(lease_expires_at=now + lease_seconds, updated_at=now)
        .returning(_j.id)
    )
    return {int(i) for i in held.scalars()}


def retry_failed(conn: Connection, job_id: int, *, now: float | None = None) -> bool:
    """Manually requeue a failed job (dead letter) with a fresh attempt budget."""
    now = time.time() if now is None else now
    found = conn.execute(
        update(jobs)
        .where(_j.id == job_id, _j.state == JobState.FAILED.value)
        .values(
            state=JobState.QUEUED.value, attempts=0, run_at=now, updated_at=now, finished_at=None
        )
        .returning(_j.kind, _j.session_id)
    ).one_or_none()
    if found is None:
        return False
    wakeups.enqueued(conn, found.kind, found.session_id)
    return True


def discard_failed(conn: Connection, job_id: int) -> bool:
    """Delete a failed job (a dead letter nobody wants retried)."""
    res = conn.execute(delete(jobs).where(_j.id == job_id, _j.state == JobState.FAILED.value))
    return res.rowcount == 1


# Dead workers.

# This process among all that ever had its pid on this host: a restarted container's
# process often gets the pid of the one that died (1, say), and must not take that
# one's leases for its own.
PROCESS_TOKEN = os.urandom(4).hex()


def process_owner(label: str) -> str:
    """A lease owner unique to this process: "<label>:<host>:<pid>:<process token>"."""
    return f"{label}:{socket.gethostname()}:{os.getpid()}:{PROCESS_TOKEN}"


def _owner_pid(owner: str) -> tuple[str, int, str] | None:
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2]), parts[3].split("-", 1)[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def owner_is_dead(owner: str) -> bool:
    """True for a lease owner that was a process of this host which no longer runs."""
    found = _owner_pid(owner)
    if found is None or found[0] != socket.gethostname():
        return False
    _, pid, token = found
    if pid == os.getpid():
        return token != PROCESS_TOKEN  # our pid, but an earlier process that had it
    return not _alive(pid)


def release_dead_leases(conn: Connection, kinds: Sequence[str], *, now: float | None = None) -> int:
    """Expire the leases of running jobs whose worker process on this host is gone, so a
    restart after a crash resumes them at once instead of after their lease."""
    now = time.time() if now is None else now
    rows = conn.execute(
        select(_j.id, _j.lease_owner).where(
            _j.state == JobState.RUNNING.value,
            _j.kind.in_(list(kinds)),
            _j.lease_expires_at >= now,
        )
    ).all()
    dead = [job_id for job_id, owner in rows if owner_is_dead(owner or "")]
    for part in _chunks(dead):
        conn.execute(
            update(jobs)
            .where(_j.id.in_(list(part)), _j.state == JobState.RUNNING.value)
            .values(lease_expires_at=now - 0.001, updated_at=now)
        )
    return len(dead)


def release_session_leases(
    conn: Connection,
    session_id: int,
    kinds: Sequence[str],
    keep_owner: str,
    *,
    now: float | None = None,
) -> int:
    """Make a session's running jobs of other workers claimable now: its new owner took
    the session over, and the old one can no longer record anything for it."""
    now = time.time() if now is None else now
    res = conn.execute(
        update(jobs)
        .where(
            _j.session_id == session_id,
            _j.kind.in_(list(kinds)),
            _j.state == JobState.RUNNING.value,
            _j.lease_owner != keep_owner,
        )
        .values(lease_expires_at=now - 0.001, updated_at=now)
    )
    return int(res.rowcount)


def release_owner(conn: Connection, owner: str, *, now: float | None = None) -> int:
    """Make the running jobs of one worker claimable now (a node known to be dead)."""
    now = time.time() if now is None else now
    res = conn.execute(
        update(jobs)
        .where(
            _j.state == JobState.RUNNING.value,
            _j.lease_owner == owner,
            _j.lease_expires_at >= now,
        )
        .values(lease_expires_at=now - 0.001, updated_at=now)
    )
    return int(res.rowcount)


# Job payloads that record progress (history work).


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and another took it)."""


def _locked(conn: Connection, stmt: Any) -> Any:
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def owned_payload(conn: Connection, job_id: int, owner: str) -> dict[str, Any]:
    """The job's current payload, locked; raises LeaseLost unless `owner` runs it."""
    row = conn.execute(
        _locked(
            conn,
            select(_j.payload).where(
                _j.id == job_id, _j.lease_owner == owner, _j.state == JobState.RUNNING.value
            ),
        )
    ).one_or_none()
    if row is None:
        raise LeaseLost(f"job {job_id} is no longer leased by {owner}")
    payload: dict[str, Any] = json.loads(row.payload or "{}")
    return payload


def record_progress(
    conn: Connection, job_id: int, owner: str, payload: dict[str, Any], now: float
) -> None:
    """Store progress; failures are counted again from here (the job is advancing)."""
    conn.execute(
        update(jobs)
        .where(_j.id == job_id, _j.lease_owner == owner)
        .values(payload=_dump(payload), attempts=1, last_error=None, updated_at=now)
    )


def replace_payload(conn: Connection, job_id: int, payload: dict[str, Any], now: float) -> bool:
    """Replace a pending job's payload; False when it is no longer pending (it finished
    meanwhile, and what was asked for must go to a new job)."""
    result = conn.execute(
        update(jobs)
        .where(_j.id == job_id, _j.state.in_(PENDING))
        .values(payload=_dump(payload), updated_at=now)
    )
    return result.rowcount == 1


def rekey_queued(
    conn: Connection, session_id: int, old_key: str, new_key: str, now: float
) -> list[tuple[Job, Job | None]]:
    """Move the session's queued jobs keyed `old_key` to `new_key` (a person merged).

    A job whose kind already has a pending job under `new_key` is not moved: it is
    deleted, and returned with that job, so its caller can widen the one kept. Payload
    fields equal to `old_key` are rewritten. Running jobs are left to their worker.
    Returns (job as it was, job under the new key it gave way to, or None if moved).
    """
    rows = conn.execute(
        select(jobs).where(
            _j.session_id == session_id,
            # A key may carry a suffix after '#' (a gap fill's scan: "<chat>#<scan id>").
            or_(_j.unique_key == old_key, _j.unique_key.startswith(old_key + "#", autoescape=True)),
            _j.state == JobState.QUEUED,
        )
    ).all()
    out: list[tuple[Job, Job | None]] = []
    for row in rows:
        job = Job.from_row(row)
        key = new_key + str(job.unique_key)[len(old_key) :]
        kept = pending_job(conn, job.kind, session_id, key)
        if kept is not None:
            conn.execute(delete(jobs).where(_j.id == job.id))
            out.append((job, kept))
            continue
        payload = {k: new_key if v == old_key else v for k, v in job.payload.items()}
        conn.execute(
            update(jobs)
            .where(_j.id == job.id)
            .values(unique_key=key, payload=_dump(payload), updated_at=now)
        )
        out.append((job, None))
    return out


# Reading.


def get_job(conn: Connection, job_id: int) -> Job | None:
    row = conn.execute(select(jobs).where(_j.id == job_id)).one_or_none()
    return Job.from_row(row) if row is not None else None


def pending_job(conn: Connection, kind: str, session_id: int, key: str) -> Job | None:
    """The queued or running job of this kind for this key, locked for an update."""
    row = conn.execute(
        _locked(
            conn,
            select(jobs).where(
                _j.kind == kind,
                _j.session_id == session_id,
                _j.unique_key == key,
                _j.state.in_(PENDING),
            ),
        )
    ).one_or_none()
    return Job.from_row(row) if row is not None else None


def pending_jobs(conn: Connection, kind: str, session_id: int) -> list[Job]:
    rows = conn.execute(
        select(jobs)
        .where(_j.kind == kind, _j.session_id == session_id, _j.state.in_(PENDING))
        .order_by(_j.id)
    )
    return [Job.from_row(r) for r in rows]


def latest_job(
    conn: Connection, kind: str, session_id: int, key: str, *, prefix: bool = False
) -> Job | None:
    """The most recent job of this kind for this key (or `key#…`), whatever its state."""
    match = _j.unique_key.startswith(f"{key}#", autoescape=True) if prefix else _j.unique_key == key
    row = conn.execute(
        select(jobs)
        .where(_j.kind == kind, _j.session_id == session_id, match)
        .order_by(_j.id.desc())
        .limit(1)
    ).one_or_none()
    return Job.from_row(row) if row is not None else None


def pending_count(conn: Connection, kind: str, session_id: int) -> int:
    stmt = select(func.count()).where(
        _j.kind == kind, _j.session_id == session_id, _j.state.in_(PENDING)
    )
    return int(conn.execute(stmt).scalar_one())


def counts(
    conn: Connection, *, kind: str | None = None, session_id: int | None = None
) -> dict[str, dict[str, int]]:
    """{kind: {state: n}} with every state present (zero when empty)."""
    stmt = select(_j.kind, _j.state, func.count()).group_by(_j.kind, _j.state)
    if kind is not None:
        stmt = stmt.where(_j.kind == kind)
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    out: dict[str, dict[str, int]] = {}
    for k, state, n in conn.execute(stmt):
        out.setdefault(k, {s.value: 0 for s in JobState})[state] = int(n)
    if kind is not None:
        out.setdefault(kind, {s.value: 0 for s in JobState})
    return out


def state_counts(conn: Connection, kinds: Sequence[str], session_id: int) -> dict[str, int]:
    """{state: n} over several kinds of one session, every state present."""
    stmt = (
        select(_j.state, func.count())
        .where(_j.kind.in_(list(kinds)), _j.session_id == session_id)
        .group_by(_j.state)
    )
    found = {state: int(n) for state, n in conn.execute(stmt)}
    return {s.value: found.get(s.value, 0) for s in JobState}


def finished_counts(
    conn: Connection, since: float, *, kind: str | None = None, session_id: int | None = None
) -> dict[str, dict[str, int]]:
    """{kind: {done|failed: n}} of jobs finished since `since`."""
    stmt = select(_j.kind, _j.state, func.count()).where(
        _j.finished_at >= since, _j.state.in_(FINISHED)
    )
    if kind is not None:
        stmt = stmt.where(_j.kind == kind)
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    out: dict[str, dict[str, int]] = {}
    for k, state, n in conn.execute(stmt.group_by(_j.kind, _j.state)):
        out.setdefault(k, {s: 0 for s in FINISHED})[state] = int(n)
    return out


class _Minute(FunctionElement[int]):
    """The minute a time (epoch seconds, positive) falls in: floor(t / 60)."""

    type = Integer()
    inherit_cache = True


@compiles(_Minute)
def _minute_default(element: _Minute, compiler: Any, **kw: Any) -> str:
    return f"floor({compiler.process(element.clauses, **kw)} / 60)"


@compiles(_Minute, "sqlite")
def _minute_sqlite(element: _Minute, compiler: Any, **kw: Any) -> str:
    # SQLite's floor() exists only when built with its math functions; CAST truncates,
    # which is floor for the positive times a job has.
    return f"CAST({compiler.process(element.clauses, **kw)} / 60 AS INTEGER)"


def finished_by_minute(
    conn: Connection, since: float, *, session_id: int | None = None
) -> dict[str, dict[int, dict[str, int]]]:
    """{kind: {minute: {done|failed: n}}} of jobs finished since `since`; a minute is
    epoch seconds // 60 (minutes without a finished job are absent)."""
    minute = _Minute(_j.finished_at)
    stmt = select(_j.kind, minute, _j.state, func.count()).where(
        _j.finished_at >= since, _j.state.in_(FINISHED)
    )
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    out: dict[str, dict[int, dict[str, int]]] = {}
    for kind, at, state, n in conn.execute(stmt.group_by(_j.kind, minute, _j.state)):
        per = out.setdefault(kind, {}).setdefault(int(at), {s: 0 for s in FINISHED})
        per[state] = int(n)
    return out


def session_counts(conn: Connection) -> dict[int | None, dict[str, dict[str, int]]]:
    """{session id: {kind: {state: n}}}, every state present; None: jobs of no session."""
    stmt = select(_j.session_id, _j.kind, _j.state, func.count()).group_by(
        _j.session_id, _j.kind, _j.state
    )
    out: dict[int | None, dict[str, dict[str, int]]] = {}
    for sid, kind, state, n in conn.execute(stmt):
        per = out.setdefault(sid, {}).setdefault(kind, {s.value: 0 for s in JobState})
        per[state] = int(n)
    return out


def dead_letters(
    conn: Connection, *, kind: str | None = None, session_id: int | None = None, limit: int = 20
) -> list[Job]:
    """Failed jobs (they gave up), the most recently failed first."""
    stmt = select(jobs).where(_j.state == JobState.FAILED.value)
    if kind is not None:
        stmt = stmt.where(_j.kind == kind)
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    stmt = stmt.order_by(_j.updated_at.desc(), _j.id.desc()).limit(limit)
    return [Job.from_row(r) for r in conn.execute(stmt)]


def recent_errors(
    conn: Connection, *, kind: str | None = None, session_id: int | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    stmt = (
        select(
            _j.id,
            _j.kind,
            _j.unique_key,
            _j.state,
            _j.attempts,
            _j.last_error,
            _j.updated_at,
        )
        .where(_j.last_error.is_not(None))
        .order_by(_j.updated_at.desc())
        .limit(limit)
    )
    if kind is not None:
        stmt = stmt.where(_j.kind == kind)
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def list_jobs(
    conn: Connection,
    kinds: Sequence[str],
    session_id: int,
    *,
    state: str | None = None,
    target: str | None = None,
    limit: int = 50,
) -> list[Job]:
    """Jobs of these kinds of a session, the most recently changed first."""
    stmt = select(jobs).where(_j.kind.in_(list(kinds)), _j.session_id == session_id)
    if state is not None:
        stmt = stmt.where(_j.state == state)
    if target is not None:
        stmt = stmt.where(_j.target == target)
    stmt = stmt.order_by(_j.updated_at.desc(), _j.id.desc()).limit(limit)
    return [Job.from_row(r) for r in conn.execute(stmt)]


def failed_ids(
    conn: Connection, kinds: Sequence[str], session_id: int, ids: Sequence[int] | None = None
) -> list[int]:
    stmt = select(_j.id).where(
        _j.kind.in_(list(kinds)), _j.session_id == session_id, _j.state == JobState.FAILED.value
    )
    if ids is not None:
        stmt = stmt.where(_j.id.in_(list(ids)))
    return [int(i) for i in conn.execute(stmt).scalars()]


def newest_failed_per_key(conn: Connection, kind: str, session_id: int) -> list[int]:
    """The newest failed job of each key of a session, unless the key is pending again."""
    mine = (_j.kind == kind, _j.session_id == session_id)
    pending = select(_j.unique_key).where(*mine, _j.state.in_(PENDING))
    newest = (
        select(func.max(_j.id))
        .where(*mine, _j.state == JobState.FAILED.value, _j.unique_key.not_in(pending))
        .group_by(_j.unique_key)
    )
    return [int(i) for i in conn.execute(newest).scalars()]


def failed_recently(kind: str, session_id: int, key: Any, since: float) -> ColumnElement[bool]:
    """A condition for another table's query: `key` has a job of `kind` that failed
    after `since` (the avatar refresh leaves such JIDs alone for a while)."""
    return (
        select(_j.id)
        .where(
            _j.kind == kind,
            _j.session_id == session_id,
            _j.unique_key == key,
            _j.state == JobState.FAILED.value,
            _j.finished_at >= since,
        )
        .exists()
    )


# Housekeeping.


def pending_by_target(conn: Connection, kind: str, targets: Sequence[str]) -> dict[str, Job]:
    """The queued or running job of `kind` of each of these targets (the newest one)."""
    if not targets:
        return {}
    stmt = (
        select(jobs)
        .where(_j.kind == kind, _j.state.in_(PENDING), _j.target.in_(list(targets)))
        .order_by(_j.id)
    )
    return {str(job.target): job for job in map(Job.from_row, conn.execute(stmt))}


def cancel_queued(conn: Connection, kinds: Sequence[str], targets: Sequence[str]) -> int:
    """Drop queued (not running) jobs of these targets; returns how many."""
    if not targets:
        return 0
    res = conn.execute(
        delete(jobs).where(
            _j.kind.in_(list(kinds)),
            _j.state == JobState.QUEUED.value,
            _j.target.in_(list(targets)),
        )
    )
    return int(res.rowcount)


def prune_done(
    conn: Connection,
    older_than: float,
    *,
    kind: str | None = None,
    session_id: int | None = None,
) -> int:
    """Delete finished jobs older than a cut-off (the table is a queue, not an archive)."""
    stmt = jobs.delete().where(_j.state == JobState.DONE.value, _j.finished_at < bindparam("cut"))
    if kind is not None:
        stmt = stmt.where(_j.kind == kind)
    if session_id is not None:
        stmt = stmt.where(_j.session_id == session_id)
    res = conn.execute(stmt, {"cut": older_than})
    return int(res.rowcount)


__all__ = [
    "FINISHED",
    "PENDING",
    "PROCESS_TOKEN",
    "Job",
    "JobState",
    "LeaseLost",
    "cancel_queued",
    "claim",
    "complete",
    "counts",
    "defer",
    "discard_failed",
    "enqueue",
    "enqueue_many",
    "fail",
    "failed_ids",
    "failed_recently",
    "finished_counts",
    "get_job",
    "heartbeat",
    "hurry",
    "latest_job",
    "list_jobs",
    "newest_failed_per_key",
    "next_due",
    "owned_payload",
    "owner_is_dead",
    "pending_count",
    "pending_job",
    "pending_jobs",
    "pending_sessions",
    "process_owner",
    "prune_done",
    "recent_errors",
    "record_progress",
    "release_dead_leases",
    "release_owner",
    "release_session_leases",
    "replace_payload",
    "retry_failed",
    "state_counts",
]
