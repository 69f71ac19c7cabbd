"""Broker endpoints through the delivery worker: a simulator's sync and live traffic
arrive exactly as the envelopes say; an unreachable broker loses nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wasync.engines.simulator import Network, SimulatorEngine
from wasync.store.db import Database

from ..waiting import eventually
from .brokers import Destination, destination, proxy_to, where_of
from .webhooks_harness import Harness, avatar_data, started

KINDS = ["nats", "rabbitmq", "redis"]
STREAMS = {"stream_timeout": 2.0}


def envelopes(h: Harness) -> list[dict[str, Any]]:
    return [j.payload["envelope"] for j in h.deliveries()]


async def arrived(dest: Destination) -> list[dict[str, Any]]:
    return [g.json() for g in await dest.received()]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_consumer_receives_every_event_of_a_sync_as_its_envelope(
    db: Database, tmp_path: Path, kind: str
) -> None:
    net = Network.from_scale("tiny", 3)
    engine = SimulatorEngine(net)
    async with destination(kind) as dest, started(db, tmp_path, **STREAMS) as h:
        endpoint = await h.endpoint(dest.url(), "*", secret=None)
        assert endpoint.kind == kind and endpoint.secret is None
        await h.runtime.add_session("default", engine, engine_name="simulator")
        report = await h.runtime.sync_chats("default", 5)
        progress = 1 + 2 * report.chats
        await eventually(
            lambda: Counter(e["event"] for e in envelopes(h))["sync.progress"] == progress
        )
        await engine.push_live(40)
        await engine.drained()
        # Until every delivery is done and has arrived (a broker confirms before its
        # consumers see the message), and no new one came meanwhile (live events still
        # committing).
        async with asyncio.timeout(60):
            while True:
                await eventually(h.settled, within=30)
                jobs = h.deliveries()
                sent = {e["id"]: e for e in (j.payload["envelope"] for j in jobs)}
                got = await dest.received()
                if {g.json()["id"] for g in got} >= set(sent) and len(h.deliveries()) == len(jobs):
                    break
                await asyncio.sleep(0.05)

    assert {j.kind for j in jobs} == {kind} and {j.state for j in jobs} == {"done"}
    topics = Counter(e["event"] for e in sent.values())
    assert topics["message"] >= report.messages > 0
    assert topics["contact"] == len(net.contacts()) and topics["session.status"] == 1
    # Every event arrived, exactly as its envelope, under its subject/routing key; more
    # than once only if its publish was tried again (a confirm missing its deadline).
    counts = Counter(g.json()["id"] for g in got)
    assert set(counts) == set(sent)
    tries = {j.payload["envelope"]["id"]: j.attempts for j in jobs}
    assert all(n == 1 or tries[i] > 1 for i, n in counts.items()), {
        i: (n, tries[i]) for i, n in counts.items() if n > 1
    }
    for g in got:
        envelope = sent[g.json()["id"]]
        assert g.json() == envelope
        assert where_of(kind, envelope, dest.name) in (None, g.where)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreachable_broker_keeps_events_queued_then_delivers_them_all(
    db: Database, tmp_path: Path, kind: str
) -> None:
    settings = {**STREAMS, "webhook_max_attempts": 1000, "stream_timeout": 1.0}
    async with (
        destination(kind) as dest,
        started(db, tmp_path, **settings) as h,
        proxy_to(dest.server) as proxy,
    ):
        await h.endpoint(dest.url(proxy.port), ["avatar"], secret=None)
        for i in range(5):
            h.record("avatar", avatar_data(f"5511999990{i:03d}@s.whatsapp.net", f"a{i}"))
        await eventually(h.settled)
        assert len(await arrived(dest)) == 5

        proxy.cut()  # the broker goes away mid-stream
        for i in range(5, 25):
            h.record("avatar", avatar_data(f"5511999990{i:03d}@s.whatsapp.net", f"a{i}"))

        def retrying() -> bool:  # failed tries, then the endpoint's circuit opens
            return sum(j.attempts for j in h.deliveries("queued")) >= 6

        await eventually(retrying, within=30)
        now = time.time()
        waiting = [j for j in h.deliveries("queued") if j.attempts >= 1]
        errors = {j.last_error or "" for j in waiting}
        assert all(e.startswith(f"{kind}: ") for e in errors), errors
        assert all("could not reach" in e or "within 1 s" in e or "closed" in e for e in errors), (
            errors
        )
        assert any(j.run_at > now - 0.5 for j in waiting)  # backing off, not spinning
        assert h.deliveries("failed") == []
        assert len(await arrived(dest)) == 5  # nothing got through meanwhile

        proxy.restore()
        await eventually(h.settled, within=60)
        jobs = h.deliveries()
        got = await arrived(dest)

    assert [j.state for j in jobs] == ["done"] * 25
    ids = Counter(e["id"] for e in got)
    assert set(ids) == {j.payload["envelope"]["id"] for j in jobs}  # nothing lost
    sent = {j.payload["envelope"]["id"]: j.payload["envelope"] for j in jobs}
    assert all(e == sent[e["id"]] for e in got)  # a repeat is the same event
    if kind == "nats":
        assert set(ids.values()) == {1}  # JetStream dropped any re-send by Nats-Msg-Id


async def test_removing_an_endpoint_closes_its_broker_connection(
    db: Database, tmp_path: Path
) -> None:
    from wasync.delivery import admin

    async with destination("redis") as dest, started(db, tmp_path, **STREAMS) as h:
        endpoint = await h.endpoint(dest.url(), ["avatar"], secret=None)
        h.record("avatar", avatar_data("551199999000@s.whatsapp.net", "p1"))
        await eventually(h.settled)
        assert h.service.publishers is not None and len(h.service.publishers) == 1
        admin.remove_endpoint(db, "default", endpoint.id)
        await h.service.endpoints_changed()
        assert len(h.service.publishers) == 0
        assert len(await arrived(dest)) == 1


async def test_refused_credentials_are_dead_lettered_and_never_logged(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from urllib.parse import urlsplit

    from .brokers import AMQP_ENV, require, unique

    password = "Wr0ng-pw-never-shown"
    parts = urlsplit(require(AMQP_ENV))
    url = f"amqp://guest:{password}@{parts.hostname}:{parts.port or 5672}/?exchange={unique('wt')}"
    caplog.set_level(logging.DEBUG)
    async with started(db, tmp_path, **STREAMS) as h:
        await h.endpoint(url, ["avatar"], secret=None)
        h.record("avatar", avatar_data("551199999000@s.whatsapp.net", "p1"))
        await eventually(h.settled)
        (job,) = h.deliveries()
    assert (job.state, job.attempts) == ("failed", 1)  # dead-lettered at once
    assert "refused the credentials" in (job.last_error or "")
    assert "guest:****@" in (job.last_error or "")
    assert password not in (job.last_error or "") and password not in caplog.text
