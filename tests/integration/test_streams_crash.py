"""A publisher killed mid-publish loses nothing, and repeats an event only with its id.

A real `wasync webhooks deliver` process publishes an endpoint's log of events to a
real broker; it is SIGKILLed while events are in flight, and a second process
finishes the log. Every event must have arrived; an event published by the killed
process but not yet passed in the database is published again with the same id, and
JetStream's duplicate window (the id as `Nats-Msg-Id`) keeps even that from its
consumers.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from wasync.delivery.endpoints import DELIVERY_KINDS
from wasync.delivery.hook import outbox_event
from wasync.store.db import Database
from wasync.store.schema import jobs, stream_cursors, stream_events

from .brokers import Destination, destination
from .delivery_processes import deliver, enqueue_avatars, jid
from .webhooks_harness import avatar_data

pytestmark = pytest.mark.slow

EVENTS = 1500
WASYNC = str(Path(sys.executable).parent / "wasync")


async def _arrived(dest: Destination) -> Counter[str]:
    return Counter(g.json()["id"] for g in await dest.received())


def _published_ids(db: Database) -> set[str]:
    """The ids of the events enqueued, once the log says every one is published."""
    with db.read() as conn:
        (head, sent), *_ = conn.execute(select(stream_cursors.c.head, stream_cursors.c.sent))
        left = conn.execute(select(stream_events.c.seq)).all()
        per_event = conn.execute(select(jobs.c.id).where(jobs.c.kind.in_(DELIVERY_KINDS))).all()
    assert (head, sent, left, per_event) == (EVENTS, EVENTS, [], [])
    return {
        outbox_event("default", "avatar", avatar_data(jid(i), str(i))).id for i in range(EVENTS)
    }


@pytest.mark.parametrize("kind", ["nats", "rabbitmq", "redis"])
async def test_sigkill_mid_publish_loses_nothing(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    db = Database(sqlite_url)
    db.migrate()
    first: subprocess.Popen[str] | None = None
    try:
        async with destination(kind) as dest:
            await enqueue_avatars(db, tmp_path, dest.url(), EVENTS, secret=None)
            # One event per round trip, so that the kill finds one in flight, not the
            # log done (a pump publishes thousands a second in batches).
            first = deliver(db, tmp_path, env={"WASYNC_STREAM_BATCH": "1"})
            deadline = time.monotonic() + 60
            while sum((await _arrived(dest)).values()) < EVENTS // 50:
                assert time.monotonic() < deadline, "the publisher published nothing"
                await asyncio.sleep(0.005)
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
            before = await _arrived(dest)
            assert len(before) < EVENTS  # it really died mid-way

            second = deliver(db, tmp_path, "--until-idle")
            _, err = await asyncio.to_thread(second.communicate, timeout=120)
            assert second.returncode == 0, err
            after = await _arrived(dest)
    finally:
        if first is not None and first.poll() is None:
            first.kill()
            first.communicate(timeout=30)
        ids = _published_ids(db)
        db.close()
    assert len(ids) == EVENTS
    assert set(after) == ids  # nothing lost
    assert all(n in (1, 2) for n in after.values())  # a repeat only with its own id
    if kind == "nats":
        assert set(after.values()) == {1}  # JetStream dropped the re-sends by Nats-Msg-Id
