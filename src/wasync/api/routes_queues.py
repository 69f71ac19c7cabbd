"""The jobs queue at a glance, per kind: counts by state, rate, recent errors, and the
figures each queue's worker reports (`runtime.queue_stats[kind]()`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import Connection

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_runtime
from wasync.api.errors import Conflict, NotFound
from wasync.api.routes_chats import session_id_of
from wasync.cluster.view import cluster_view
from wasync.jobs import queries as queue
from wasync.jobs.depth import DepthSample, queue_depth
from wasync.runtime import Runtime
from wasync.store.sessions import list_sessions

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/queues", tags=["queues"], dependencies=[Authenticated])
RuntimeDep = Depends(get_runtime)
ERRORS = S.error_responses(400, 401, 404, 409, 422)
RATE_WINDOW = 300.0  # seconds of finished jobs behind the per-minute rates
RECENT_ERRORS = 10
SERIES_MINUTES = 60  # the charts' span: the last hour, a bar per minute
DEAD_LETTERS = 20


def _read(runtime: Runtime, session: str | None, now: float) -> dict[str, Any]:
    with runtime.db.read() as conn:
        sid = session_id_of(conn, session) if session else None
        counts = queue.counts(conn, session_id=sid)
        recent: dict[tuple[str, str], int] = {
            (kind, state): n
            for kind, states in queue.finished_counts(
                conn, now - RATE_WINDOW, session_id=sid
            ).items()
            for state, n in states.items()
        }
        kinds = sorted(set(counts) | set(runtime.queue_stats))
        errors = {
            kind: queue.recent_errors(conn, kind=kind, session_id=sid, limit=RECENT_ERRORS)
            for kind in kinds
        }
        first_minute = int(now // 60) - SERIES_MINUTES + 1
        by_minute = queue.finished_by_minute(conn, first_minute * 60.0, session_id=sid)
        dead = {
            kind: queue.dead_letters(conn, kind=kind, session_id=sid, limit=DEAD_LETTERS)
            for kind in kinds
        }
        per_session = queue.session_counts(conn)
        names = {row.id: row.name for row in list_sessions(conn)}
    return {
        "counts": counts,
        "recent": recent,
        "kinds": kinds,
        "errors": errors,
        "first_minute": first_minute,
        "by_minute": by_minute,
        "dead": dead,
        "per_session": per_session,
        "names": names,
    }


def _series(found: dict[str, Any], kind: str, depth: list[DepthSample]) -> S.QueueSeries:
    first = found["first_minute"]
    minutes = [first + i for i in range(SERIES_MINUTES)]
    per = found["by_minute"].get(kind, {})
    return S.QueueSeries(
        minutes=[m * 60 for m in minutes],
        done=[per.get(m, {}).get("done", 0) for m in minutes],
        failed=[per.get(m, {}).get("failed", 0) for m in minutes],
        depth=[
            S.DepthPoint(at=s.at, queued=s.queued.get(kind, 0), running=s.running.get(kind, 0))
            for s in depth
        ],
    )


def _dead_letter(job: queue.Job) -> S.DeadLetter:
    return S.DeadLetter(
        id=job.id,
        kind=job.kind,
        key=job.unique_key,
        attempts=job.attempts,
        error=job.last_error,
        failed_at=job.updated_at,
    )


def _stats(runtime: Runtime, kind: str) -> dict[str, Any]:
    provider = runtime.queue_stats.get(kind)
    if provider is None:
        return {}
    try:
        return dict(provider())
    except Exception as exc:  # one broken provider must not hide the dashboard
        log.warning("queue stats of %s failed: %s", kind, exc)
        return {"error": str(exc)}


@router.get("", response_model=S.QueuesOut, responses=ERRORS)
async def list_queues(
    session: str | None = Query(None, description="Only this session's jobs."),
    runtime: Runtime = RuntimeDep,
) -> S.QueuesOut:
    now = time.time()
    found = await asyncio.to_thread(_read, runtime, session, now)
    sampler = queue_depth(runtime)
    # Depth samples count every session's jobs: with `session`, the chart is left out.
    depth = sampler.samples(now - SERIES_MINUTES * 60) if sampler and not session else []
    minutes = RATE_WINDOW / 60
    queues = []
    for kind in found["kinds"]:
        counts = found["counts"].get(kind) or {s.value: 0 for s in queue.JobState}
        queues.append(
            S.QueueOut(
                kind=kind,
                counts=counts,
                done_per_minute=round(found["recent"].get((kind, "done"), 0) / minutes, 2),
                failed_per_minute=round(found["recent"].get((kind, "failed"), 0) / minutes, 2),
                recent_errors=[
                    S.JobError(
                        id=e["id"],
                        key=e["unique_key"],
                        state=e["state"],
                        attempts=e["attempts"],
                        error=e["last_error"],
                        at=e["updated_at"],
                    )
                    for e in found["errors"][kind]
                ],
                # Providers read live worker state: call them on the event loop.
                stats=_stats(runtime, kind),
                series=_series(found, kind, depth),
                dead_letters=[_dead_letter(j) for j in found["dead"][kind]],
            )
        )
    by_session = [
        S.SessionJobs(session=found["names"].get(sid) if sid is not None else None, counts=kinds)
        for sid, kinds in sorted(found["per_session"].items(), key=lambda kv: kv[0] or 0)
    ]
    return S.QueuesOut(
        queues=queues,
        generated_at=now,
        nodes=await _nodes(runtime),
        sessions=by_session,
        depth_interval=sampler.interval if sampler else None,
    )


async def _nodes(runtime: Runtime) -> list[S.NodeFigures]:
    """What each node did, from the figures their heartbeats leave in the database."""
    me = S.NodeFigures(
        node=runtime.holder,
        sessions=sorted(runtime.sessions),
        jobs_processed=dict(runtime.jobs.processed),
        events_committed=runtime.writer.committed_events,
    )
    if runtime.db.is_sqlite:
        return [me]

    def read() -> dict[str, Any]:
        with runtime.db.read() as conn:
            return cluster_view(conn, ttl=runtime.ownership.ttl)

    view = await asyncio.to_thread(read)
    out = []
    for node in view["nodes"]:
        if node["id"] == me.node:
            out.append(me)
            continue
        stats = node.get("stats") or {}
        out.append(
            S.NodeFigures(
                node=node["id"],
                sessions=node["sessions"],
                jobs_processed=dict(stats.get("jobsProcessed") or {}),
                events_committed=stats.get("eventsCommitted"),
            )
        )
    return out


async def _on_failed_job(
    runtime: Runtime, job_id: int, act: Callable[[Connection, int], bool], done: str
) -> None:
    """`act` on a failed job: 404 for no such job, 409 for one that has not failed."""

    def run() -> bool | None:
        with runtime.db.write() as conn:
            if queue.get_job(conn, job_id) is None:
                return None
            return act(conn, job_id)

    outcome = await asyncio.to_thread(run)
    if outcome is None:
        raise NotFound(f"no job {job_id}")
    if not outcome:
        raise Conflict(f"job {job_id} has not failed: only failed jobs can be {done}")


@router.delete("/jobs/{job_id}", status_code=204, responses=ERRORS)
async def discard_job(
    job_id: Annotated[int, Path(**S.id_bounds("The job's id."))], runtime: Runtime = RuntimeDep
) -> Response:
    """Delete a failed job (a dead letter nobody wants retried)."""
    await _on_failed_job(runtime, job_id, queue.discard_failed, "discarded")
    return Response(status_code=204)


@router.post("/jobs/{job_id}/retry", responses=ERRORS, response_model=S.JobRetried)
async def retry_job(
    job_id: Annotated[int, Path(**S.id_bounds("The job's id."))], runtime: Runtime = RuntimeDep
) -> dict[str, Any]:
    """Queue a failed job again, with a fresh budget of tries."""
    await _on_failed_job(runtime, job_id, queue.retry_failed, "retried")
    return {"id": job_id, "state": queue.JobState.QUEUED.value}
