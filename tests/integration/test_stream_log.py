"""A broker endpoint's log and its pump, on SQLite and PostgreSQL.

The pump is driven here with a scripted publisher (what a broker answered is the
script), so that partial acknowledgements, refusals and two pumps at once can be
set up exactly; the real brokers are in test_streams_delivery.py and
test_streams_crash.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from wasync.delivery import endpoints as E
from wasync.delivery.circuit import Circuit
from wasync.delivery.streams import log as stream_log
from wasync.delivery.streams.publisher import Failed, Outgoing, Published, PublishResult
from wasync.delivery.streams.pump import Pump
from wasync.jobs import queries as queue
from wasync.jobs.outcome import Defer, Done, Retry
from wasync.store.db import Database
from wasync.store.schema import jobs, stream_events, webhook_endpoints
from wasync.store.sessions import ensure_session

from ..waiting import eventually


def make_endpoint(db: Database, kind: str = "nats") -> tuple[int, int]:
    with db.write() as conn:
        sid = ensure_session(conn, "default", "simulator")
        endpoint_id = conn.execute(
            insert(webhook_endpoints)
            .values(
                session_name="default",
                url=f"{kind}://127.0.0.1:9/wasync" if kind == "nats" else "redis://127.0.0.1:9/0",
                kind=kind,
                events="*",
                created_at=0,
                updated_at=0,
            )
            .returning(webhook_endpoints.c.id)
        ).scalar_one()
    return sid, endpoint_id


def entries(first: int, n: int) -> list[tuple[str, str, str, float]]:
    out = []
    for i in range(first, first + n):
        envelope = {"id": f"evt_{i}", "event": "message", "session": "default", "data": {"i": i}}
        out.append((f"evt_{i}", "message", json.dumps(envelope), 1_700_000_000.0 + i))
    return out


def append(db: Database, endpoint_id: int, sid: int, first: int, n: int) -> None:
    with db.write() as conn:
        stream_log.append(conn, endpoint_id, sid, entries(first, n))


def pumps(db: Database, state: str | None = None) -> list[queue.Job]:
    with db.read() as conn:
        stmt = select(jobs).where(jobs.c.kind == stream_log.PUMP)
        if state is not None:
            stmt = stmt.where(jobs.c.state == state)
        return [queue.Job.from_row(r) for r in conn.execute(stmt)]


def position(db: Database, endpoint_id: int) -> tuple[int, int]:
    with db.read() as conn:
        sent, rest = stream_log.read(conn, endpoint_id, 1_000_000)
        head = sent + len(rest)
    return head, sent


class Script:
    """A broker for the pump: answers what `answer(item index in call, item)` says."""

    def __init__(
        self,
        answer: Callable[[int, Outgoing], PublishResult] | None = None,
        timeline: list[str] | None = None,
    ) -> None:
        self.answer = answer or (lambda i, item: Published())
        self.calls: list[list[str]] = []
        self.delay = 0.0
        self.timeline = [] if timeline is None else timeline  # shared by several brokers

    async def publish(
        self, endpoint_id: int, url: str, items: Sequence[Any]
    ) -> list[PublishResult]:
        self.calls.append([item.id for item in items])
        if self.delay:
            await asyncio.sleep(self.delay)
        self.timeline.extend(item.id for item in items)  # arrived (acknowledged) now
        return [self.answer(i, item) for i, item in enumerate(items)]

    @property
    def sent(self) -> list[str]:
        return [i for call in self.calls for i in call]


def pump_for(db: Database, script: Script, *, batch: int = 10, slice_s: float = 60.0) -> Pump:
    circuits: dict[int, Circuit] = {}
    return Pump(
        db,
        lambda: script,  # type: ignore[arg-type,return-value]
        lambda e: circuits.setdefault(e, Circuit(0, 1.0)),
        batch=batch,
        dead_letter_attempts=10,
        retry_delay=0.1,
        slice_seconds=slice_s,
    )


def job_of(db: Database, endpoint_id: int) -> queue.Job:
    (job,) = pumps(db, "queued")
    return job


def test_numbers_follow_the_appends_and_one_pump_is_queued(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 3)
    append(db, endpoint_id, sid, 3, 2)
    with db.read() as conn:
        sent, rows = stream_log.read(conn, endpoint_id, 100)
    assert sent == 0
    assert [(r.seq, r.event_id) for r in rows] == [(i + 1, f"evt_{i}") for i in range(5)]
    assert rows[0].timestamp == 1_700_000_000.0 and rows[0].session_id == sid
    (pump,) = pumps(db)  # the second append found one queued
    assert (pump.state, pump.target, pump.session_id) == ("queued", str(endpoint_id), sid)


def test_a_running_pump_does_not_stop_the_next_append_from_queueing_one(db: Database) -> None:
    """A pump that is ending may have read before the append: another must follow."""
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 1)
    with db.write() as conn:
        (claimed,) = queue.claim(conn, [stream_log.PUMP], "me")
    append(db, endpoint_id, sid, 1, 1)
    assert sorted(j.state for j in pumps(db)) == ["queued", "running"]
    assert claimed.state == "running"


async def test_a_pump_publishes_in_order_in_batches_and_empties_the_log(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 25)
    script = Script()
    pump = pump_for(db, script, batch=10)
    assert await pump.run(job_of(db, endpoint_id)) == Done()
    assert [len(c) for c in script.calls] == [10, 10, 5]
    assert script.sent == [f"evt_{i}" for i in range(25)]
    assert position(db, endpoint_id) == (25, 25)
    with db.read() as conn:
        assert conn.execute(select(stream_events)).all() == []  # what is out is gone
    assert pump.published == 25


async def test_a_broker_that_stops_part_way_gets_the_rest_later_in_order(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 10)
    down = {"now": False}

    def answer(i: int, item: Outgoing) -> PublishResult:
        if item.id == "evt_4":
            down["now"] = True
        return Failed("nats: could not reach it") if down["now"] else Published()

    script = Script(answer)
    pump = pump_for(db, script, batch=10)
    outcome = await pump.run(job_of(db, endpoint_id))
    # Four taken, then nothing: retried later (counted as a try), nothing dead-lettered.
    assert isinstance(outcome, Defer) and "could not reach" in (outcome.reason or "")
    assert position(db, endpoint_id) == (10, 4)
    down["now"] = False
    script.answer = lambda i, item: Published()
    assert await pump.run(job_of(db, endpoint_id)) == Done()
    assert script.sent[-6:] == [f"evt_{i}" for i in range(4, 10)]
    assert position(db, endpoint_id) == (10, 10)
    with db.read() as conn:
        assert queue.list_jobs(conn, ("nats",), sid, state="failed") == []


async def test_a_broker_that_is_away_is_retried_not_given_up(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 3)
    script = Script(lambda i, item: Failed("nats: could not reach it"))
    outcome = await pump_for(db, script).run(job_of(db, endpoint_id))
    assert outcome == Retry("nats: could not reach it")
    assert position(db, endpoint_id) == (3, 0)


async def test_an_event_refused_for_good_is_a_dead_letter_and_the_rest_go_on(
    db: Database,
) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 5)

    def answer(i: int, item: Outgoing) -> PublishResult:
        if item.id == "evt_2":
            return Failed("nats: the event is too large", permanent=True)
        return Published()

    script = Script(answer)
    assert await pump_for(db, script).run(job_of(db, endpoint_id)) == Done()
    assert position(db, endpoint_id) == (5, 5)
    with db.read() as conn:
        (dead,) = queue.list_jobs(conn, ("nats",), sid, state="failed")
    assert dead.target == str(endpoint_id) and dead.last_error == "nats: the event is too large"
    assert dead.payload == {
        "endpoint": endpoint_id,
        "envelope": {"id": "evt_2", "event": "message", "session": "default", "data": {"i": 2}},
    }
    assert dead.unique_key == f"{endpoint_id}:evt_2"
    with db.write() as conn:  # a retry puts it back in the queue of its kind
        assert queue.retry_failed(conn, dead.id)


async def test_a_pump_takes_turns_after_its_slice(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 30)
    script = Script()
    outcome = await pump_for(db, script, batch=10, slice_s=0.0).run(job_of(db, endpoint_id))
    assert isinstance(outcome, Defer) and outcome.run_at <= time.time()
    assert position(db, endpoint_id) == (30, 10)  # one batch, then its turn is over


async def test_two_pumps_at_once_publish_everything_and_only_repeat_with_the_same_ids(
    db: Database,
) -> None:
    """Two nodes each running the endpoint's pump: `sent` moves only from where a pump
    read it, so the one that falls behind reads on from the other's position."""
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 200)
    timeline: list[str] = []
    first, second = Script(timeline=timeline), Script(timeline=timeline)
    first.delay, second.delay = 0.002, 0.003
    job = job_of(db, endpoint_id)
    outcomes = await asyncio.gather(
        pump_for(db, first, batch=7).run(job), pump_for(db, second, batch=7).run(job)
    )
    assert outcomes == [Done(), Done()]
    assert position(db, endpoint_id) == (200, 200)
    assert set(timeline) == {f"evt_{i}" for i in range(200)}  # nothing lost
    # A consumer deduping by id sees them in order: each event's first arrival comes
    # after every earlier event's (a pump sends past a number only once it is out).
    firsts = list(dict.fromkeys(timeline))
    assert firsts == [f"evt_{i}" for i in range(200)]


async def test_settle_passes_over_numbers_whose_rows_are_gone(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 4)
    with db.write() as conn:  # what deleting the session does to its events
        conn.execute(stream_events.delete())
    assert await pump_for(db, Script()).run(job_of(db, endpoint_id)) == Done()
    assert position(db, endpoint_id) == (4, 4)


def test_removing_an_endpoint_drops_its_log_and_its_pump(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 7)
    with db.write() as conn:
        assert E.remove(conn, endpoint_id) == 7
    with db.read() as conn:
        assert conn.execute(select(stream_events)).all() == []
        assert stream_log.backlog(conn) == {}
    assert pumps(db) == []


@pytest.mark.postgres
def test_an_append_in_flight_holds_back_the_pump_that_is_ending(pg_schema_url: str) -> None:
    """PostgreSQL: a pump about to end looks at `head` under the cursor's row lock, so
    an append that has not committed yet is waited for and seen, not left behind."""
    db = Database(pg_schema_url)
    db.migrate()
    try:
        _append_in_flight(db)
    finally:
        db.close()


def _append_in_flight(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 1)
    with db.write() as conn:
        sent, rows = stream_log.read(conn, endpoint_id, 10)
        stream_log.advance(conn, endpoint_id, sent, rows[-1].seq, now=time.time())
    answer: list[bool] = []
    with db.engine.connect() as appender:
        appender.begin()
        stream_log.append(appender, endpoint_id, sid, entries(1, 2))
        backend = appender.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def settle() -> None:
            with db.write() as conn:
                answer.append(stream_log.settle(conn, endpoint_id, now=time.time()))

        waiter = threading.Thread(target=settle)
        waiter.start()

        def blocked() -> bool:
            with db.engine.connect() as probe:
                found = probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE :pid = ANY(pg_blocking_pids(pid))"
                    ),
                    {"pid": backend},
                ).scalar_one()
            return bool(found)

        try:
            asyncio.run(eventually(blocked, within=10))
            assert answer == []  # still waiting for the appender
        finally:
            appender.commit()
            waiter.join(timeout=10)
    assert answer == [True]  # it saw the two new events: the pump goes on


def test_a_log_left_without_a_pump_gets_one(db: Database) -> None:
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 3)
    with db.write() as conn:
        assert stream_log.requeue_stalled(conn) == []  # its pump is queued
        conn.execute(jobs.delete())  # lost (discarded by hand, say)
        assert stream_log.requeue_stalled(conn) == [endpoint_id]
        assert stream_log.requeue_stalled(conn) == []
    (pump,) = pumps(db, "queued")
    assert pump.target == str(endpoint_id)


async def test_events_appended_while_the_last_batch_is_out_go_in_the_same_run(
    db: Database,
) -> None:
    """The move past the last batch reads `head` under the cursor's lock: what was
    appended meanwhile is seen, and published before the pump ends."""
    sid, endpoint_id = make_endpoint(db)
    append(db, endpoint_id, sid, 0, 3)
    more = {"left": 2}
    script = Script()

    def answer(i: int, item: Outgoing) -> PublishResult:
        if more["left"] and item.id == script.calls[-1][-1]:  # the end of a batch
            more["left"] -= 1
            n = len(script.sent)
            append(db, endpoint_id, sid, n, 2)  # committed while the batch is out
        return Published()

    script.answer = answer
    assert await pump_for(db, script, batch=10).run(job_of(db, endpoint_id)) == Done()
    assert script.sent == [f"evt_{i}" for i in range(7)]
    assert position(db, endpoint_id) == (7, 7)
