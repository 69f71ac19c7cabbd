"""A broker endpoint's events as a numbered log, and where its publishing stands.

Webhooks take one job per event; a broker takes hundreds of events per round trip,
and through the jobs table each of them cost a claim and a "done" write that moved
its row in every index of the table. Here an endpoint's events are rows numbered
1, 2, 3... (`stream_events`), and one row per endpoint (`stream_cursors`) says how
far numbering (`head`) and publishing (`sent`) have gone. Publishing a batch is one
range read, one publish, and one statement moving `sent` (plus a range delete of
what it passed).

Numbers follow commit order. `append` bumps `head` first, which locks the cursor row
until the transaction ends (PostgreSQL; SQLite has one writer at a time anyway), so
a transaction that commits later always has higher numbers: a pump reading up to
`head` never skips a number that commits after it read.

The pump (delivery/streams/pump.py) is a job of the `stream` kind, one queued per
endpoint at most: `append` queues one unless one is queued already. A running pump
does not count, since it may be finishing: before it ends it looks at `head` under
the same row lock (as it moves `sent`, or with `settle`), so either it sees the new
events or the appender, coming after, sees no queued pump and queues one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from wasync.jobs import queries as queue
from wasync.store.schema import stream_cursors, stream_events
from wasync.store.upsert import insert_for

PUMP = "stream"  # the job kind of broker endpoints' pumps
_c = stream_cursors.c
_e = stream_events.c
_ENTRY = (_e.seq, _e.session_id, _e.event_id, _e.topic, _e.body, _e.timestamp)  # Entry's order


@dataclass(frozen=True, slots=True)
class Entry:
    """One event in an endpoint's log, as it is published."""

    seq: int
    session_id: int | None
    event_id: str
    topic: str
    body: str  # the envelope's JSON, exactly as it is sent
    timestamp: float  # the envelope's


def append(
    conn: Connection,
    endpoint_id: int,
    session_id: int | None,
    entries: Sequence[tuple[str, str, str, float]],
    *,
    now: float | None = None,
) -> int:
    """Add (event id, topic, body, timestamp) entries to the endpoint's log, in this order, and
    make sure its pump is queued. Call inside the transaction that made the events."""
    if not entries:
        return 0
    now = time.time() if now is None else now
    n = len(entries)
    bump = insert_for(conn, stream_cursors).values(
        endpoint_id=endpoint_id, head=n, sent=0, updated_at=now
    )
    head = conn.execute(
        bump.on_conflict_do_update(
            index_elements=["endpoint_id"],
            set_={"head": stream_cursors.c.head + n, "updated_at": now},
        ).returning(_c.head)
    ).scalar_one()
    first = head - n + 1
    conn.execute(
        stream_events.insert(),
        [
            {
                "endpoint_id": endpoint_id,
                "seq": first + i,
                "session_id": session_id,
                "event_id": event_id,
                "topic": topic,
                "body": body,
                "timestamp": stamp,
            }
            for i, (event_id, topic, body, stamp) in enumerate(entries)
        ],
    )
    queue.enqueue_unless_queued(conn, PUMP, target=str(endpoint_id), session_id=session_id, now=now)
    return n


def read(conn: Connection, endpoint_id: int, limit: int) -> tuple[int, list[Entry]]:
    """Where publishing stands (`sent`) and the next `limit` entries after it.

    One statement, so both come from one snapshot (PostgreSQL's READ COMMITTED takes
    one per statement): a `sent` read before another pump moved it, next to rows read
    after it deleted some, would send that pump back over numbers already out.
    """
    # `sent` as a scalar subquery, not a join: the planner then uses it as the bound of
    # the index range (a join condition was a filter over every entry of the endpoint
    # still in the index, dead ones included: on PostgreSQL each read of a 20,000-event
    # log got slower as it emptied).
    sent = select(_c.sent).where(_c.endpoint_id == endpoint_id).scalar_subquery()
    rows = conn.execute(
        select(sent, *_ENTRY)
        .where(_e.endpoint_id == endpoint_id, _e.seq > sent)
        .order_by(_e.seq)
        .limit(limit)
    ).all()
    if not rows:
        now = conn.execute(select(_c.sent).where(_c.endpoint_id == endpoint_id)).scalar()
        return int(now or 0), []
    return int(rows[0][0]), [Entry(*r[1:]) for r in rows]


def read_after(conn: Connection, endpoint_id: int, seq: int, limit: int) -> list[Entry]:
    """The next `limit` entries after number `seq` (the batch after one being sent)."""
    rows = conn.execute(
        select(*_ENTRY)
        .where(_e.endpoint_id == endpoint_id, _e.seq > seq)
        .order_by(_e.seq)
        .limit(limit)
    ).all()
    return [Entry(*r) for r in rows]


def advance(conn: Connection, endpoint_id: int, sent: int, to: int, *, now: float) -> int | None:
    """Move `sent` from `sent` to `to` and drop what it passed. Answers the endpoint's
    `head` as of the move, read under the cursor row's lock as `settle` reads it (a
    pump that moved `sent` up to it may end), or None if someone else moved `sent`
    first (another node's pump: it published the same events, with the same ids)."""
    head = conn.execute(
        update(stream_cursors)
        .where(_c.endpoint_id == endpoint_id, _c.sent == sent)
        .values(sent=to, updated_at=now)
        .returning(_c.head)
    ).scalar()
    if head is None:
        return None
    # The range it passed only: below `sent` lie the index entries of rows deleted
    # before (dead until vacuumed), which a delete from the start would walk again.
    conn.execute(
        delete(stream_events).where(_e.endpoint_id == endpoint_id, _e.seq > sent, _e.seq <= to)
    )
    return int(head)


def settle(conn: Connection, endpoint_id: int, *, now: float) -> bool:
    """Before a pump ends: is there more? Reads `head` under the cursor row's lock, so
    an append still in flight is waited for. Numbers with no row left (their session
    was deleted) are passed over."""
    stmt = select(_c.head, _c.sent).where(_c.endpoint_id == endpoint_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    found = conn.execute(stmt).one_or_none()
    if found is None or found.head <= found.sent:
        return False
    left = conn.execute(
        select(func.min(_e.seq)).where(_e.endpoint_id == endpoint_id, _e.seq > found.sent)
    ).scalar()
    if left is None:
        advance(conn, endpoint_id, found.sent, found.head, now=now)
        return False
    return True


def requeue_stalled(conn: Connection, *, now: float | None = None) -> list[int]:
    """Queue a pump for every endpoint with events waiting and none queued or running;
    which endpoints got one. A safety net, not the way pumps start (`append` queues
    them): a pump job lost some other way (discarded by hand, say) would otherwise
    leave its log waiting for the next event."""
    waiting = backlog(conn)
    if not waiting:
        return []
    pumped = queue.pending_by_target(conn, PUMP, [str(e) for e in waiting])
    stalled = [e for e in sorted(waiting) if str(e) not in pumped]
    for endpoint_id in stalled:
        queue.enqueue_unless_queued(conn, PUMP, target=str(endpoint_id), session_id=None, now=now)
    return stalled


def backlog(conn: Connection, endpoint_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Events waiting to be published, by endpoint (endpoints with none left out)."""
    stmt = select(_c.endpoint_id, _c.head - _c.sent).where(_c.head > _c.sent)
    if endpoint_ids is not None:
        stmt = stmt.where(_c.endpoint_id.in_(list(endpoint_ids)))
    return {int(r[0]): int(r[1]) for r in conn.execute(stmt)}


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an endpoint's log stands: what is waiting, and since when."""

    endpoint_id: int
    head: int  # the last number given
    sent: int  # everything up to it is out
    oldest: float | None  # the envelope timestamp of the first event waiting

    @property
    def waiting(self) -> int:
        return self.head - self.sent


def standing(conn: Connection, endpoint_ids: Sequence[int]) -> list[Standing]:
    """The logs of these endpoints (those that ever had an event), by endpoint."""
    if not endpoint_ids:
        return []
    found = conn.execute(
        select(_c.endpoint_id, _c.head, _c.sent)
        .where(_c.endpoint_id.in_(list(endpoint_ids)))
        .order_by(_c.endpoint_id)
    ).all()
    out = []
    for endpoint_id, head, sent in found:
        oldest = None
        if head > sent:  # one index seek: the first entry after `sent`
            oldest = conn.execute(
                select(_e.timestamp)
                .where(_e.endpoint_id == endpoint_id, _e.seq > sent)
                .order_by(_e.seq)
                .limit(1)
            ).scalar()
        out.append(Standing(int(endpoint_id), int(head), int(sent), oldest))
    return out


def waiting(conn: Connection, endpoint_ids: Sequence[int] | None = None) -> int:
    """Events waiting to be published, in all (of these endpoints, or of every one)."""
    if endpoint_ids is not None and not endpoint_ids:
        return 0
    return sum(backlog(conn, endpoint_ids).values())
