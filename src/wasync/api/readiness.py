"""`GET /ready`: whether this process can do its work now, for load balancers and probes.

`/health` says the process is alive (restarting it would not help a full disk);
`/ready` says whether the mirror is being written: 503 while the database does not
answer, or while a session's batch writer is retrying a commit the database refused
(a full disk, a read-only file, PostgreSQL down). It turns 200 again by itself once
the writer's retry lands. An idle server notices a refusing database at its next
commit: nothing is written here just to find out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import text

from wasync.api import schemas as S
from wasync.runtime import Runtime

router = APIRouter(tags=["ops"])
DATABASE_TIMEOUT = 3.0  # seconds a `SELECT 1` may take before the database counts as down


@dataclass(slots=True)
class WriteState:
    failing: dict[str, str] = field(default_factory=dict)  # session -> error retried now
    retried_commits: int = 0  # commits retried since start, every session


def write_state(runtime: Runtime) -> WriteState:
    """What the process's writer reports: a commit it retries now fails for every session
    whose events it holds (they share group commits)."""
    writer = runtime.writer
    state = WriteState(retried_commits=writer.store_errors)
    if writer.failing is not None:
        for name in runtime.sessions:
            state.failing[name] = writer.failing
    return state


class DatabaseOut(S.Model):
    ok: bool
    error: str | None = None


class WritesOut(S.Model):
    ok: bool
    failing: dict[str, str] = Field(description="Session -> the error its writer retries.")
    retried_commits: int = Field(description="Commits retried since start (all sessions).")


class ReadyOut(S.Model):
    status: Literal["ready", "not_ready"]
    database: DatabaseOut
    writes: WritesOut


async def _database_error(runtime: Runtime) -> str | None:
    def probe() -> None:
        with runtime.db.read() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(probe), DATABASE_TIMEOUT)
    except TimeoutError:
        return f"the database did not answer within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: see database and writes."}},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness, without the API key: 200 when the database answers and no session's
    writer is retrying a refused commit, 503 otherwise."""
    runtime: Runtime = request.app.state.runtime
    error = await _database_error(runtime)
    writes = write_state(runtime)
    ok = error is None and not writes.failing
    body = ReadyOut(
        status="ready" if ok else "not_ready",
        database=DatabaseOut(ok=error is None, error=error),
        writes=WritesOut(
            ok=not writes.failing,
            failing=writes.failing,
            retried_commits=writes.retried_commits,
        ),
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if ok else 503)
