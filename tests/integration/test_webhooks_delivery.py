"""Durable webhook delivery against a real receiver on 127.0.0.1 that checks signatures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasync.delivery.signing import EVENT_ID_HEADER
from wasync.store.db import Database

from ..waiting import eventually
from .delivery_servers import Script, WebhookReceiver, running
from .webhooks_harness import SECRET, avatar_data, started

ALICE = "5511999990001@s.whatsapp.net"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver(SECRET)) as server:
        yield server


async def test_server_errors_are_retried_until_delivered_with_one_event_id(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = receiver.script("/flaky", Script(statuses=[500, 500], then=200))
    async with started(db, tmp_path, public_url="https://wa.example.com") as h:
        await h.endpoint(url, ["avatar"])
        h.record("avatar", avatar_data(ALICE, "1700000001"))
        await eventually(h.settled)
        (job,) = h.deliveries()

    got = receiver.on("/flaky")
    assert [r.status for r in got] == [500, 500, 200]  # two failures, then exactly one more
    assert all(r.signed for r in got)
    assert len({r.headers[EVENT_ID_HEADER.lower()] for r in got}) == 1
    assert [r.headers["x-wasync-attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.body for r in got}) == 1  # the same bytes each time
    envelope = got[-1].json()
    assert envelope["id"] == got[0].headers[EVENT_ID_HEADER.lower()]
    assert envelope["event"] == "avatar" and envelope["session"] == "default"
    assert envelope["data"] == {
        "session": "default",
        "jid": ALICE,
        "phone": "5511999990001",
        "pictureUrl": f"https://wa.example.com/media/avatars/default/{ALICE}.jpg",
        "picturePath": f"/media/avatars/default/{ALICE}.jpg",
        "pictureId": "1700000001",
        "sha256": "0" * 64,
    }
    assert (job.state, job.attempts) == ("done", 3)


async def test_gone_is_dead_lettered_at_once_and_retried_by_hand(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    from wasync.delivery import admin

    url = receiver.script("/gone", Script(statuses=[410], then=200))
    async with started(db, tmp_path) as h:
        await h.endpoint(url, ["avatar"])
        h.record("avatar", avatar_data(ALICE, "1700000002"))
        await eventually(h.settled)
        (dead,) = h.deliveries("failed")
        assert dead.attempts == 1 and "410" in (dead.last_error or "")
        assert len(receiver.on("/gone")) == 1  # no retry of a 4xx

        listed = admin.list_deliveries(db, "default")
        assert [d["id"] for d in listed] == [dead.id]
        assert listed[0]["event"] == "avatar" and listed[0]["state"] == "failed"

        assert admin.retry_deliveries(db, "default") == (1, [])
        await eventually(h.settled)
        assert [j.state for j in h.deliveries()] == ["done"]
    got = receiver.on("/gone")
    assert [r.status for r in got] == [410, 200]
    assert got[0].body == got[1].body


async def test_retry_after_holds_the_next_try_back(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = receiver.script("/busy", Script(statuses=[429], then=200, headers={"Retry-After": "60"}))
    async with started(db, tmp_path) as h:
        await h.endpoint(url, ["avatar"])
        before = time.time()
        h.record("avatar", avatar_data(ALICE, "1700000003"))
        await eventually(lambda: len(receiver.on("/busy")) == 1)
        await eventually(lambda: h.deliveries()[0].state == "queued")
        (job,) = h.deliveries()
    assert job.attempts == 1 and "429" in (job.last_error or "")
    assert job.run_at >= before + 60  # not earlier than the receiver asked


async def test_a_rolled_back_change_enqueues_nothing(db: Database, tmp_path: Path) -> None:
    async with started(db, tmp_path) as h:
        await h.endpoint("http://127.0.0.1:9/never", ["avatar"])
        with pytest.raises(RuntimeError), db.write() as conn:
            h.runtime.outbox.record(conn, h.sid, "avatar", avatar_data(ALICE, "1"))
            raise RuntimeError("the avatar write failed after recording")
        assert h.deliveries() == []
        # Topics an endpoint did not ask for are not enqueued either.
        h.record("history.progress", {"chat": "x"})
        assert h.deliveries() == []


async def test_unreachable_receivers_are_retried_then_dead_lettered(
    db: Database, tmp_path: Path
) -> None:
    async with started(db, tmp_path, webhook_max_attempts=3) as h:
        await h.endpoint("http://127.0.0.1:9/closed-port", ["avatar"])
        h.record("avatar", avatar_data(ALICE, "1700000004"))
        await eventually(h.settled)
        (job,) = h.deliveries()
    assert (job.state, job.attempts) == ("failed", 3)
    assert "could not reach http://127.0.0.1:9/closed-port" in (job.last_error or "")


async def test_ping_reaches_the_endpoint_whatever_its_filter(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    from wasync.delivery.envelope import Event

    url = receiver.script("/ping", Script())
    async with started(db, tmp_path) as h:
        endpoint = await h.endpoint(url, ["message"])
        event = Event.occurrence("default", "ping", {"message": "test"})
        assert h.delivery.enqueue("default", [event], endpoint_id=endpoint.id) == 1
        await eventually(lambda: len(receiver.on("/ping")) == 1)
    (got,) = receiver.on("/ping")
    assert got.signed and got.json()["event"] == "ping" and got.json()["id"] == event.id
