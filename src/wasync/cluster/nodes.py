"""The nodes of a cluster: every `wasync serve` on one PostgreSQL database has a row.

A node's row is renewed by its heartbeat; a node whose heartbeat is older than the
lease time is not counted (its sessions' leases have run out by then too), and a
node that stops cleanly deletes its row at once. A name is unique among the nodes
alive: a second process that takes a live node's name is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from wasync.errors import ConfigError
from wasync.store.schema import cluster_nodes, session_leases
from wasync.store.upsert import insert_for

_n = cluster_nodes.c


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    incarnation: str
    address: str | None
    host: str | None
    pid: int | None
    started_at: float
    heartbeat_at: float
    stats: dict[str, Any]

    @classmethod
    def from_row(cls, row: Any) -> Node:
        m = row._mapping
        return cls(
            name=m["name"],
            incarnation=m["incarnation"],
            address=m["address"],
            host=m["host"],
            pid=m["pid"],
            started_at=m["started_at"],
            heartbeat_at=m["heartbeat_at"],
            stats=json.loads(m["stats"] or "{}"),
        )


def register(
    conn: Connection,
    name: str,
    incarnation: str,
    *,
    address: str | None,
    host: str,
    pid: int,
    now: float,
    ttl: float,
) -> None:
    """Add this node (or take over the row of a dead one of the same name)."""
    row = {
        "name": name,
        "incarnation": incarnation,
        "address": address,
        "host": host,
        "pid": pid,
        "started_at": now,
        "heartbeat_at": now,
        "stats": "{}",
    }
    ins = insert_for(conn, cluster_nodes).values(row)
    stmt = ins.on_conflict_do_update(
        index_elements=["name"],
        set_={k: ins.excluded[k] for k in row if k != "name"},
        # Only a row whose node stopped beating (or this very process) may be replaced.
        where=or_(_n.heartbeat_at < now - ttl, _n.incarnation == incarnation),
    ).returning(_n.name)
    if conn.execute(stmt).scalar_one_or_none() is None:
        other = conn.execute(select(_n.host, _n.pid).where(_n.name == name)).one()
        raise ConfigError(
            f"node name {name!r} is in use by a running node (pid {other.pid} on "
            f"{other.host}): give each node its own --node-name"
        )


def heartbeat(
    conn: Connection, name: str, incarnation: str, now: float, stats: dict[str, Any]
) -> bool:
    """Renew this node's row; False when it is gone (pruned while we were paused)."""
    res = conn.execute(
        update(cluster_nodes)
        .where(_n.name == name, _n.incarnation == incarnation)
        .values(heartbeat_at=now, stats=json.dumps(stats, separators=(",", ":")))
    )
    return res.rowcount == 1


def remove(conn: Connection, name: str, incarnation: str) -> None:
    conn.execute(delete(cluster_nodes).where(_n.name == name, _n.incarnation == incarnation))


def live(conn: Connection, now: float, ttl: float) -> list[Node]:
    rows = conn.execute(select(cluster_nodes).where(_n.heartbeat_at >= now - ttl).order_by(_n.name))
    return [Node.from_row(r) for r in rows]


def dead(conn: Connection, now: float, ttl: float) -> list[Node]:
    rows = conn.execute(select(cluster_nodes).where(_n.heartbeat_at < now - ttl))
    return [Node.from_row(r) for r in rows]


def forget(conn: Connection, names: list[str], now: float, ttl: float) -> None:
    """Delete the rows of these nodes if they are still dead."""
    if names:
        conn.execute(delete(cluster_nodes).where(_n.name.in_(names), _n.heartbeat_at < now - ttl))


def sessions_by_holder(conn: Connection, now: float) -> dict[str, list[int]]:
    """Session ids per holder, for leases that have not run out."""
    rows = conn.execute(
        select(session_leases.c.holder, session_leases.c.session_id).where(
            session_leases.c.holder.is_not(None),
            or_(
                session_leases.c.expires_at.is_(None),
                session_leases.c.expires_at >= now,
            ),
        )
    )
    out: dict[str, list[int]] = {}
    for holder, sid in rows:
        out.setdefault(holder, []).append(int(sid))
    return out


def holders(conn: Connection, now: float) -> dict[int, str]:
    """The holder of each held session (by session id)."""
    return {sid: holder for holder, sids in sessions_by_holder(conn, now).items() for sid in sids}


__all__ = [
    "Node",
    "dead",
    "forget",
    "heartbeat",
    "holders",
    "live",
    "register",
    "remove",
    "sessions_by_holder",
]
