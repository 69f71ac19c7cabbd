"""What the API and CLI do with endpoints and deliveries (one implementation for both)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import Connection, func, select

from wasync.delivery import endpoints as E
from wasync.delivery.ssrf import Guard
from wasync.errors import DomainError
from wasync.store import jobs as J
from wasync.store.db import Database
from wasync.store.schema import jobs
from wasync.store.sessions import get_session

MAX_LIST = 500


async def add_endpoint(
    db: Database,
    guard: Guard,
    session: str,
    url: str,
    events: str | list[str],
    *,
    kind: str | None = None,
    secret: str | None = None,
    description: str | None = None,
) -> E.Endpoint:
    """Validate (SSRF guard included) and store; the session must exist."""
    spec = await E.validate(
        guard, session, url, events, kind=kind, secret=secret, description=description
    )

    def store() -> E.Endpoint:
        with db.write() as conn:
            get_session(conn, session)  # a typo'd session would never fire: say so
            return E.add(conn, spec)

    return await asyncio.to_thread(store)


def list_endpoints(db: Database, session: str | None) -> list[E.Endpoint]:
    with db.read() as conn:
        if session is not None:
            get_session(conn, session)
        return E.list_all(conn, session)


def find_endpoint(conn: Connection, session: str, endpoint_id: int) -> E.Endpoint:
    found = E.get(conn, endpoint_id)
    if found is None or found.session != session:
        raise E.EndpointNotFound(f"session {session!r} has no webhook endpoint {endpoint_id}")
    return found


def remove_endpoint(db: Database, session: str, endpoint_id: int) -> int:
    """Remove it and its queued deliveries; returns how many deliveries were cancelled."""
    with db.write() as conn:
        found = find_endpoint(conn, session, endpoint_id)
        if found.source == "file":
            raise E.FileManaged(
                f"endpoint {endpoint_id} comes from the webhooks file: remove it there"
            )
        return E.remove(conn, endpoint_id)


def _delivery(row: Any) -> dict[str, Any]:
    try:
        payload = json.loads(row.payload or "{}")
    except ValueError:
        payload = {}
    envelope = payload.get("envelope") or {}
    return {
        "id": int(row.id),
        "kind": row.kind,
        "endpoint": payload.get("endpoint"),
        "event": envelope.get("event"),
        "eventId": envelope.get("id"),
        "state": row.state,
        "attempts": int(row.attempts),
        "maxAttempts": int(row.max_attempts),
        "lastError": row.last_error,
        "runAt": row.run_at,
        "updatedAt": row.updated_at,
    }


def _session_deliveries(conn: Connection, session: str) -> Any:
    sid = get_session(conn, session).id
    return jobs.c.kind.in_(E.DELIVERY_KINDS), jobs.c.session_id == sid


def list_deliveries(
    db: Database,
    session: str,
    *,
    state: str | None = J.JobState.FAILED.value,
    endpoint_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Deliveries of a session, newest first (default: the dead letters)."""
    if state is not None and state not in {s.value for s in J.JobState}:
        raise DomainError(f"unknown state {state!r}: {', '.join(s.value for s in J.JobState)}")
    with db.read() as conn:
        stmt = select(jobs).where(*_session_deliveries(conn, session))
        if state is not None:
            stmt = stmt.where(jobs.c.state == state)
        if endpoint_id is not None:
            stmt = stmt.where(jobs.c.unique_key.startswith(f"{endpoint_id}:", autoescape=True))
        stmt = stmt.order_by(jobs.c.updated_at.desc(), jobs.c.id.desc())
        rows = conn.execute(stmt.limit(max(1, min(limit, MAX_LIST)))).all()
    return [_delivery(r) for r in rows]


def delivery_counts(db: Database, session: str) -> dict[str, int]:
    with db.read() as conn:
        stmt = (
            select(jobs.c.state, func.count())
            .where(*_session_deliveries(conn, session))
            .group_by(jobs.c.state)
        )
        found = {state: int(n) for state, n in conn.execute(stmt)}
    return {s.value: found.get(s.value, 0) for s in J.JobState}


def retry_deliveries(
    db: Database, session: str, job_ids: list[int] | None = None
) -> tuple[int, list[int]]:
    """Requeue dead letters (all of the session's, or these); (requeued, not found/failed)."""
    with db.write() as conn:
        where = _session_deliveries(conn, session)
        stmt = select(jobs.c.id).where(*where, jobs.c.state == J.JobState.FAILED.value)
        if job_ids is not None:
            stmt = stmt.where(jobs.c.id.in_(job_ids))
        ids = [int(i) for i in conn.execute(stmt).scalars()]
        done = sum(1 for i in ids if J.retry_failed(conn, i))
    missing = [i for i in (job_ids or []) if i not in ids]
    return done, missing
