"""The cluster at a glance: its nodes and the sessions each one runs."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from fastapi import APIRouter, Depends

from wasync.api import schemas as S
from wasync.api.deps import Authenticated, get_runtime
from wasync.cluster.view import cluster_view
from wasync.runtime import Runtime

router = APIRouter(prefix="/api/cluster", tags=["cluster"], dependencies=[Authenticated])
RuntimeDep = Depends(get_runtime)


@router.get("", response_model=S.ClusterOut, responses=S.error_responses(401))
async def get_cluster(runtime: Runtime = RuntimeDep) -> dict[str, Any]:
    """Every live node (`wasync serve` on this database) with the sessions it runs, and
    sessions held by something that is not a node (a command such as `wasync sync`).

    On SQLite (one machine) this server is the only node."""

    def read() -> dict[str, Any]:
        with runtime.db.read() as conn:
            return cluster_view(conn, ttl=runtime.ownership.ttl)

    view = await asyncio.to_thread(read)
    if runtime.db.is_sqlite:
        me = runtime.holder
        sessions = sorted(runtime.sessions)
        view["holders"] = {k: v for k, v in view["holders"].items() if v != me}
        view["nodes"] = [
            {
                "id": me,
                "address": None,
                "sessions": sessions,
                "heartbeatAt": time.time(),
                "startedAt": None,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "stats": {},
            }
        ]
    return view
