"""A slow receiver stalls nobody but itself.

The slow receiver answers 200 and then trickles its body a byte every half second: each
read gets data, so only a deadline for the whole try ends it. Next to it a healthy
receiver must get every event while the slow one holds its slots, and deleting the
slow endpoint must stop its tries at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wasync.delivery import admin
from wasync.store.db import Database

from ..waiting import eventually
from .delivery_servers import Script, WebhookReceiver, running
from .webhooks_harness import avatar_data, started

DEADLINE = 1.5  # seconds a try may take in all
SLOW = Script(body=b"x" * 200, trickle=0.5)  # 100 s to answer in full, never 0.5 s silent


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver()) as server:
        yield server


async def test_a_trickling_receiver_times_out_whole_and_the_healthy_one_gets_everything(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    settings = {"webhook_timeout": DEADLINE, "webhook_concurrency": 4}
    async with started(db, tmp_path, **settings) as h:
        slow = await h.endpoint(receiver.script("/slow", SLOW), ["avatar"])
        for i in range(6):
            h.record("avatar", avatar_data(f"5511000{i:04d}@s.whatsapp.net", str(i)))
        # The slow endpoint holds its slots (2 by default) ...
        await eventually(lambda: len(receiver.on("/slow")) >= 2, within=20)
        fast = await h.endpoint(receiver.script("/fast", Script()), ["contact"])
        for i in range(30):
            h.record("contact", {"jid": f"5511111{i:04d}@s.whatsapp.net"})

        def fast_done() -> int:
            return sum(1 for j in h.deliveries("done") if j.payload.get("endpoint") == fast.id)

        # ... and the healthy one gets all of its events meanwhile.
        await eventually(lambda: fast_done() == 30, within=30)
        assert len(receiver.on("/fast")) == 30
        slow_jobs = [j for j in h.deliveries() if j.payload.get("endpoint") == slow.id]
        assert not any(j.state == "done" for j in slow_jobs)  # still trickling

        # A try ends at the deadline for the whole answer, though bytes keep coming.
        await eventually(
            lambda: any(
                "in 1.5 s" in (j.last_error or "")
                for j in h.deliveries()
                if j.payload.get("endpoint") == slow.id
            ),
            within=20,
        )

        # Deleting the slow endpoint stops its tries under way at once.
        await eventually(lambda: slow.id in h.service._flights, within=20)
        admin.remove_endpoint(db, "default", slow.id)
        await h.service.endpoints_changed()
        await eventually(lambda: slow.id not in h.service._flights, within=5)
        assert h.service.cancelled_tries >= 1


async def test_an_endpoint_that_keeps_failing_is_left_alone_without_burning_tries(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    settings = {"webhook_circuit_failures": 3, "webhook_circuit_seconds": 120}
    async with started(db, tmp_path, **settings) as h:
        down = await h.endpoint(receiver.script("/down", Script(then=503)), ["avatar"])
        up = await h.endpoint(receiver.script("/up", Script()), ["contact"])
        for i in range(10):
            h.record("avatar", avatar_data(f"5511000{i:04d}@s.whatsapp.net", str(i)))
        for i in range(10):
            h.record("contact", {"jid": f"5511111{i:04d}@s.whatsapp.net"})

        def of(endpoint_id: int) -> list[Any]:
            return [j for j in h.deliveries() if j.payload.get("endpoint") == endpoint_id]

        await eventually(lambda: all(j.state == "done" for j in of(up.id)), within=30)
        # Every queued delivery of the failing endpoint was looked at and put back...
        await eventually(lambda: all(j.run_at > time.time() + 60 for j in of(down.id)), within=30)
        # ... after three failed tries in a row (and the one other already under way
        # then: two go to an endpoint at once), not ten times the retries.
        assert 3 <= len(receiver.on("/down")) <= 4
        assert sum(j.attempts for j in of(down.id)) == len(receiver.on("/down"))
        assert all(j.state == "queued" for j in of(down.id))  # none dead-lettered


async def test_an_endpoint_gets_its_own_number_of_tries_at_once(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """WASYNC_WEBHOOK_ENDPOINT_CONCURRENCY tries of one endpoint go at once, whatever
    other kinds share the runner (a broker pump runs alone per endpoint: its cap must
    not become the webhooks')."""
    settings = {"webhook_timeout": 60.0, "webhook_endpoint_concurrency": 2}
    async with started(db, tmp_path, **settings) as h:
        held = await h.endpoint(receiver.script("/held", Script(delay=30.0)), ["avatar"])
        for i in range(3):
            h.record("avatar", avatar_data(f"5511222{i:04d}@s.whatsapp.net", str(i)))
        # Two arrive while the first is still held (a cap of one: the second after 30 s).
        await eventually(lambda: len(receiver.on("/held")) == 2, within=10)
        assert len(receiver.on("/held")) == 2  # and not the third: the cap is two
        admin.remove_endpoint(db, "default", held.id)
        await h.service.endpoints_changed()  # its tries under way stop at once
