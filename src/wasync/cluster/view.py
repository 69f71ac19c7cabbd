"""What the cluster looks like: its nodes, and which sessions each one runs.

Read from the database alone, so any node (or `wasync cluster status`, from any
machine that reaches the database) sees the same picture.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, select

from wasync.cluster import nodes
from wasync.store.schema import sessions


def cluster_view(conn: Connection, *, ttl: float, now: float | None = None) -> dict[str, Any]:
    """{"nodes": [{id, address, sessions, heartbeatAt, startedAt, host, pid, stats}],
    "holders": {session: holder} for sessions held by something that is not a node
    (a command such as `wasync sync`)}."""
    now = time.time() if now is None else now
    names: dict[int, str] = {
        int(sid): str(name) for sid, name in conn.execute(select(sessions.c.id, sessions.c.name))
    }
    held = nodes.sessions_by_holder(conn, now)
    out = []
    for node in nodes.live(conn, now, ttl):
        out.append(
            {
                "id": node.name,
                "address": node.address,
                "sessions": sorted(names[s] for s in held.pop(node.name, []) if s in names),
                "heartbeatAt": node.heartbeat_at,
                "startedAt": node.started_at,
                "host": node.host,
                "pid": node.pid,
                "stats": node.stats,
            }
        )
    others = {names[s]: holder for holder, sids in held.items() for s in sids if s in names}
    return {"nodes": out, "holders": dict(sorted(others.items()))}
