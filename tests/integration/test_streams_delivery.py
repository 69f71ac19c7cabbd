"""Broker endpoints through the delivery worker: a simulator's sync and live traffic
arrive exactly as the envelopes say; an unreachable broker loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wasync.delivery import admin
from wasync.delivery.streams import log as stream_log
from wasync.engines.simulator import Network, SimulatorEngine
from wasync.store.db import Database

from ..waiting import eventually
from .brokers import Destination, destination, proxy_to, where_of
from .webhooks_harness import avatar_data, started

KINDS = ["nats", "rabbitmq", "redis"]
STREAMS = {"stream_timeout": 2.0}


@pytest.fixture
def appended(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Every envelope appended to a broker endpoint's log, by event id, as appended."""
    found: dict[str, dict[str, Any]] = {}
    append = stream_log.append

    def spy(conn: Any, endpoint_id: int, session_id: int | None, entries: Any, **kw: Any) -> int:
        n = append(conn, endpoint_id, session_id, entries, **kw)
        found.update((event_id, json.loads(body)) for event_id, _, body, _ in entries)
        return n

    monkeypatch.setattr(stream_log, "append", spy)
    return found


async def arrived(dest: Destination) -> list[dict[str, Any]]:
    return [g.json() for g in await dest.received()]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_consumer_receives_every_event_of_a_sync_as_its_envelope(
    db: Database, tmp_path: Path, kind: str, appended: dict[str, dict[str, Any]]
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
            lambda: Counter(e["event"] for e in appended.values())["sync.progress"] == progress
        )
        await engine.push_live(40)
        await engine.drained()
        # Until every event is published and has arrived (a broker confirms before its
        # consumers see the message), and no new one came meanwhile (live events still
        # committing).
        async with asyncio.timeout(60):
            while True:
                await eventually(h.settled, within=30)
                expected = dict(appended)
                got = await dest.received()
                everything = (len(expected), len(expected))
                if {g.json()["id"] for g in got} >= set(expected) and (
                    h.positions()[endpoint.id] == everything
                ):
                    break
                await asyncio.sleep(0.05)
        assert h.service.pump is not None
        failed_publishes = h.service.pump.failed

    # One log entry per event, all published (the loop's condition); no job per event.
    assert h.deliveries() == [] and {j.state for j in h.pumps()} == {"done"}
    topics = Counter(e["event"] for e in expected.values())
    assert topics["message"] >= report.messages > 0
    assert topics["contact"] == len(net.contacts()) and topics["session.status"] == 1
    # Every event arrived, exactly as its envelope, under its subject/routing key; more
    # than once only if a publish was tried again (a confirm missing its deadline).
    counts = Counter(g.json()["id"] for g in got)
    assert set(counts) == set(expected)
    assert failed_publishes or set(counts.values()) == {1}, counts.most_common(3)
    for g in got:
        envelope = expected[g.json()["id"]]
        assert g.json() == envelope
        assert where_of(kind, envelope, dest.name) in (None, g.where)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreachable_broker_keeps_events_queued_then_delivers_them_all(
    db: Database, tmp_path: Path, kind: str, appended: dict[str, dict[str, Any]]
) -> None:
    settings = {**STREAMS, "webhook_max_attempts": 1000, "stream_timeout": 1.0}
    async with (
        destination(kind) as dest,
        started(db, tmp_path, **settings) as h,
        proxy_to(dest.server) as proxy,
    ):
        endpoint = await h.endpoint(dest.url(proxy.port), ["avatar"], secret=None)
        for i in range(5):
            h.record("avatar", avatar_data(f"5511999990{i:03d}@s.whatsapp.net", f"a{i}"))
        await eventually(h.settled)
        assert len(await arrived(dest)) == 5

        proxy.cut()  # the broker goes away mid-stream
        for i in range(5, 25):
            h.record("avatar", avatar_data(f"5511999990{i:03d}@s.whatsapp.net", f"a{i}"))

        def retrying() -> bool:  # failed tries, then the endpoint's circuit opens
            return any(j.attempts >= 2 for j in h.pumps("queued"))

        await eventually(retrying, within=30)
        now = time.time()
        (pump,) = h.pumps("queued")
        error = pump.last_error or ""
        assert error.startswith(f"{kind}: "), error
        assert "could not reach" in error or "within 1 s" in error or "closed" in error, error
        assert pump.run_at > now - 0.5  # backing off, not spinning
        assert h.backlog() == 20  # every event waits in the log, in order
        await eventually(lambda: h.service.events_waiting() == 20)  # the dashboard's figure
        assert h.deliveries() == []  # none given up
        assert len(await arrived(dest)) == 5  # nothing got through meanwhile
        # What `wasync webhooks deliveries` and the API show: the log, since when, why.
        (log,) = admin.stream_standing(db, "default")
        first_waiting = min(
            (e for e in appended.values() if e["data"]["pictureId"] == "a5"),
            key=lambda e: e["timestamp"],
        )
        # (The pump may be trying again right now: its state, time and error move.)
        assert log["pump"] in ("queued", "running")
        assert log["lastError"].startswith(f"{kind}: ")
        assert {k: log[k] for k in ("endpoint", "kind", "waiting", "published")} == {
            "endpoint": endpoint.id,
            "kind": kind,
            "waiting": 20,
            "published": 5,
        }
        assert log["oldestWaiting"] == first_waiting["timestamp"]

        proxy.restore()
        await eventually(h.settled, within=60)
        got = await arrived(dest)

    assert len(appended) == 25
    ids = Counter(e["id"] for e in got)
    assert set(ids) == set(appended)  # nothing lost
    assert all(e == appended[e["id"]] for e in got)  # a repeat is the same event
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
        assert h.backlog() == 0  # out of the log, into the dead letters
    assert (job.state, job.attempts) == ("failed", 1)  # dead-lettered at once
    assert job.payload["envelope"]["event"] == "avatar"  # a retry sends it again
    assert "refused the credentials" in (job.last_error or "")
    assert "guest:****@" in (job.last_error or "")
    assert password not in (job.last_error or "") and password not in caplog.text
