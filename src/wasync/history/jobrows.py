"""What history work needs of the jobs table beyond store/jobs.py.

- Progress is recorded in the job's payload in the same transaction as the page it
  counts, and only while this worker still holds the lease (`LeaseLost` rolls the
  whole page back otherwise), so a page is never counted twice.
- A job leased by a process of this host that no longer exists is released at start
  instead of waiting for its lease to expire: a restart after a crash resumes at once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from sqlalchemy import Connection, select, update

from wasync.store import jobs as J
from wasync.store.schema import jobs
from wasync.workers.runner import PROCESS_TOKEN


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and another took it)."""


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def _locked(conn: Connection, stmt: Any) -> Any:
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def owned_payload(conn: Connection, job_id: int, owner: str) -> dict[str, Any]:
    """The job's current payload, locked; raises LeaseLost unless `owner` runs it."""
    j = jobs.c
    row = conn.execute(
        _locked(
            conn,
            select(j.payload).where(
                j.id == job_id, j.lease_owner == owner, j.state == J.JobState.RUNNING.value
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
        .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
        .values(payload=_dump(payload), attempts=1, last_error=None, updated_at=now)
    )


def pending_job(conn: Connection, kind: str, session_id: int, key: str) -> J.Job | None:
    """The queued or running job of this kind for this key, locked for an update."""
    j = jobs.c
    row = conn.execute(
        _locked(
            conn,
            select(jobs).where(
                j.kind == kind,
                j.session_id == session_id,
                j.unique_key == key,
                j.state.in_(J.PENDING),
            ),
        )
    ).one_or_none()
    return J.Job.from_row(row) if row is not None else None


def pending_jobs(conn: Connection, kind: str, session_id: int) -> list[J.Job]:
    j = jobs.c
    rows = conn.execute(
        select(jobs)
        .where(j.kind == kind, j.session_id == session_id, j.state.in_(J.PENDING))
        .order_by(j.id)
    )
    return [J.Job.from_row(r) for r in rows]


def latest_job(
    conn: Connection, kind: str, session_id: int, key: str, *, prefix: bool = False
) -> J.Job | None:
    """The most recent job of this kind for this key (or `key#…`), whatever its state."""
    j = jobs.c
    match = j.unique_key.startswith(f"{key}#", autoescape=True) if prefix else j.unique_key == key
    row = conn.execute(
        select(jobs)
        .where(j.kind == kind, j.session_id == session_id, match)
        .order_by(j.id.desc())
        .limit(1)
    ).one_or_none()
    return J.Job.from_row(row) if row is not None else None


def replace_payload(conn: Connection, job_id: int, payload: dict[str, Any], now: float) -> bool:
    """Replace a pending job's payload; False when it is no longer pending (it finished
    meanwhile, and what was asked for must go to a new job)."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state.in_(J.PENDING))
        .values(payload=_dump(payload), updated_at=now)
    )
    return result.rowcount == 1


def _owner_pid(owner: str) -> tuple[str, int, str] | None:
    # JobRunner's owners are "<name>:<host>:<pid>:<process token>-<suffix>" (runner.py).
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


def release_dead_leases(
    conn: Connection, kinds: tuple[str, ...], session_id: int, *, now: float | None = None
) -> int:
    """Expire the leases of running jobs whose worker process on this host is gone."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    j = jobs.c
    rows = conn.execute(
        select(j.id, j.lease_owner).where(
            j.state == J.JobState.RUNNING.value,
            j.kind.in_(kinds),
            j.session_id == session_id,
            j.lease_expires_at >= now,
        )
    ).all()
    dead = []
    for job_id, owner in rows:
        found = _owner_pid(owner or "")
        if found is None or found[0] != host:
            continue
        _, pid, token = found
        if pid == os.getpid():
            if token != PROCESS_TOKEN:  # our pid, but an earlier process that had it
                dead.append(job_id)
        elif not _alive(pid):
            dead.append(job_id)
    if dead:
        conn.execute(
            update(jobs)
            .where(j.id.in_(dead), j.state == J.JobState.RUNNING.value)
            .values(lease_expires_at=now - 0.001, updated_at=now)
        )
    return len(dead)
