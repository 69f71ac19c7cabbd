"""What the API and CLI do with endpoints and deliveries (one implementation for both)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Connection

from wasync.delivery import endpoints as E
from wasync.delivery.ssrf import Guard
from wasync.delivery.streams import log as stream_log
from wasync.errors import DomainError
from wasync.jobs import queries as queue
from wasync.store.db import Database
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


def _delivery(job: queue.Job) -> dict[str, Any]:
    payload = job.payload
    envelope = payload.get("envelope") or {}
    return {
        "id": int(job.id),
        "kind": job.kind,
        "endpoint": payload.get("endpoint"),
        "event": envelope.get("event"),
        "eventId": envelope.get("id"),
        "state": job.state,
        "attempts": int(job.attempts),
        "maxAttempts": int(job.max_attempts),
        "lastError": job.last_error,
        "runAt": job.run_at,
        "updatedAt": job.updated_at,
    }


def list_deliveries(
    db: Database,
    session: str,
    *,
    state: str | None = queue.JobState.FAILED.value,
    endpoint_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Deliveries of a session, newest first (default: the dead letters)."""
    if state is not None and state not in {s.value for s in queue.JobState}:
        states = ", ".join(s.value for s in queue.JobState)
        raise DomainError(f"unknown state {state!r}: {states}")
    with db.read() as conn:
        sid = get_session(conn, session).id
        found = queue.list_jobs(
            conn,
            E.DELIVERY_KINDS,
            sid,
            state=state,
            target=str(endpoint_id) if endpoint_id is not None else None,
            limit=max(1, min(limit, MAX_LIST)),
        )
    return [_delivery(job) for job in found]


def delivery_counts(db: Database, session: str) -> dict[str, int]:
    """Deliveries by state; events waiting in broker endpoints' logs count as queued."""
    with db.read() as conn:
        counts = queue.state_counts(conn, E.DELIVERY_KINDS, get_session(conn, session).id)
        ids = [e.id for e in E.list_all(conn, session) if E.is_broker(e.kind)]
        waiting = stream_log.waiting(conn, ids)
    if waiting:
        counts[queue.JobState.QUEUED.value] = counts.get(queue.JobState.QUEUED.value, 0) + waiting
    return counts


def stream_standing(
    db: Database, session: str, *, endpoint_id: int | None = None
) -> list[dict[str, Any]]:
    """The session's broker endpoints' logs (or this one's): what waits, since when,
    and why (the pump's last error: a broker that is away holds its events, in order)."""
    with db.read() as conn:
        brokers = {
            e.id: e
            for e in E.list_all(conn, session)
            if E.is_broker(e.kind) and endpoint_id in (None, e.id)
        }
        logs = stream_log.standing(conn, list(brokers))
        pumps = queue.pending_by_target(conn, stream_log.PUMP, [str(i) for i in brokers])
    queued = queue.JobState.QUEUED.value
    out = []
    for log in logs:
        pump = pumps.get(str(log.endpoint_id))
        out.append(
            {
                "endpoint": log.endpoint_id,
                "kind": brokers[log.endpoint_id].kind,
                "waiting": log.waiting,
                "published": log.sent,
                "oldestWaiting": log.oldest,
                "pump": pump.state if pump is not None else None,
                "nextTryAt": pump.run_at if pump is not None and pump.state == queued else None,
                "lastError": pump.last_error if pump is not None else None,
            }
        )
    return out


def retry_deliveries(
    db: Database, session: str, job_ids: list[int] | None = None
) -> tuple[int, list[int]]:
    """Requeue dead letters (all of the session's, or these); (requeued, not found/failed)."""
    with db.write() as conn:
        sid = get_session(conn, session).id
        ids = queue.failed_ids(conn, E.DELIVERY_KINDS, sid, job_ids)
        done = sum(1 for i in ids if queue.retry_failed(conn, i))
    missing = [i for i in (job_ids or []) if i not in ids]
    return done, missing
