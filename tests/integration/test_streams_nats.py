"""The NATS JetStream publisher against the real server: subjects, ids, order, dedup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wasync.delivery.envelope import Event, body_of
from wasync.delivery.streams.pool import publisher_for
from wasync.delivery.streams.publisher import Failed, Published, StreamSettings

from .brokers import NATS_ENV, NatsReader, nats_endpoint, proxy_to, require, unique

SETTINGS = StreamSettings(timeout=5.0, nats_duplicate_window=60.0)


@pytest.fixture
def server() -> str:
    return require(NATS_ENV)


@pytest.fixture
async def prefix(server: str) -> AsyncIterator[str]:
    name = unique("wt")
    yield name
    await NatsReader(server, name).delete()


def envelopes(n: int, sessions: tuple[str, ...] = ("alpha", "beta")) -> list[dict[str, Any]]:
    topics = ("message", "message.edit", "chat")
    return [
        Event.occurrence(sessions[i % len(sessions)], topics[i % 3], {"n": i}).envelope()
        for i in range(n)
    ]


async def test_each_envelope_goes_to_its_subject_with_its_id(server: str, prefix: str) -> None:
    sent = envelopes(6, ("alpha", "team.b"))
    publisher = publisher_for(nats_endpoint(server, prefix), SETTINGS)
    try:
        assert await publisher.publish_many(sent) == [Published()] * 6
    finally:
        await publisher.close()

    got = await NatsReader(server, prefix).read()  # the stream is named after the prefix
    assert [g.where for g in got] == [
        f"{prefix}.{e['session'].replace('.', '_')}.{e['event']}" for e in sent
    ]
    assert [g.meta["Nats-Msg-Id"] for g in got] == [e["id"] for e in sent]
    assert [g.body for g in got] == [body_of(e) for e in sent]
    assert [g.json() for g in got] == sent


async def test_a_batch_keeps_its_order(server: str, prefix: str) -> None:
    sent = envelopes(500, ("alpha", "beta", "gamma"))
    publisher = publisher_for(nats_endpoint(server, prefix), SETTINGS)
    try:
        first = await publisher.publish_many(sent[:250])
        second = await publisher.publish_many(sent[250:])
    finally:
        await publisher.close()
    assert first + second == [Published()] * 500
    got = [g.json()["id"] for g in await NatsReader(server, prefix).read()]
    assert got == [e["id"] for e in sent]


async def test_a_resent_event_is_acknowledged_as_a_duplicate_and_stored_once(
    server: str, prefix: str
) -> None:
    sent = envelopes(20)
    reader = NatsReader(server, prefix)
    publisher = publisher_for(nats_endpoint(server, prefix), SETTINGS)
    try:
        assert await publisher.publish_many(sent) == [Published()] * 20
        await publisher.close()  # a new connection, as after a crash
        again = await publisher.publish_many([*sent[5:10], *envelopes(1)])
    finally:
        await publisher.close()
    assert again == [Published(duplicate=True)] * 5 + [Published()]
    got = [g.json()["id"] for g in await reader.read()]
    assert len(got) == 21 and len(set(got)) == 21


async def test_the_stream_is_created_with_the_duplicate_window(server: str) -> None:
    import nats

    prefix = f"{unique('wt')}.events"
    stream = prefix.replace(".", "_")
    publisher = publisher_for(nats_endpoint(server, prefix), SETTINGS)
    try:
        assert await publisher.publish_many(envelopes(1)) == [Published()]
        nc = await nats.connect(server)
        info = await nc.jetstream().stream_info(stream)
        await nc.close()
    finally:
        await publisher.close()
        await NatsReader(server, stream).delete()
    assert info.config.subjects == [f"{prefix}.>"]
    assert info.config.duplicate_window == 60.0
    assert info.state.messages == 1


async def test_an_existing_stream_is_used_and_a_missing_one_can_be_left_missing(
    server: str, prefix: str
) -> None:
    import nats

    mine = unique("wt")
    nc = await nats.connect(server)
    await nc.jetstream().add_stream(name=mine, subjects=[f"{prefix}.>"])
    await nc.close()
    try:
        publisher = publisher_for(nats_endpoint(server, prefix), SETTINGS)
        assert await publisher.publish_many(envelopes(2)) == [Published()] * 2
        await publisher.close()
        assert len(await NatsReader(server, mine).read()) == 2
        assert await NatsReader(server, prefix).count() == 0  # no second stream
    finally:
        await NatsReader(server, mine).delete()

    keep_out = StreamSettings(timeout=5.0, nats_create_stream=False)
    publisher = publisher_for(nats_endpoint(server, unique("wt")), keep_out)
    (result,) = await publisher.publish_many(envelopes(1))
    await publisher.close()
    assert isinstance(result, Failed) and not result.permanent
    assert "no JetStream stream stores" in result.error


async def test_a_silent_server_fails_the_call_at_its_deadline_then_recovers(
    server: str, prefix: str
) -> None:
    quick = StreamSettings(timeout=0.5)
    async with proxy_to(server) as proxy:
        publisher = publisher_for(nats_endpoint(f"nats://127.0.0.1:{proxy.port}", prefix), quick)
        try:
            assert await publisher.publish_many(envelopes(2)) == [Published()] * 2
            proxy.cut("blackhole")
            results = await publisher.publish_many(envelopes(3))
            assert all(isinstance(r, Failed) and not r.permanent for r in results)
            assert "within 0.5 s" in results[0].error  # type: ignore[union-attr]
            proxy.restore()
            assert await publisher.publish_many(envelopes(2)) == [Published()] * 2
        finally:
            await publisher.close()
    assert await NatsReader(server, prefix).count() == 4


async def test_an_oversized_event_is_refused_for_good_and_the_others_go(
    server: str, prefix: str
) -> None:
    big = Event.occurrence("alpha", "message", {"text": "x" * 2_000_000}).envelope()
    sent = [*envelopes(1), big, *envelopes(1)]
    publisher = publisher_for(nats_endpoint(server, prefix), SETTINGS)
    try:
        results = await publisher.publish_many(sent)
    finally:
        await publisher.close()
    assert results[0] == results[2] == Published()
    assert isinstance(results[1], Failed) and results[1].permanent
    got = [json.loads(g.body)["id"] for g in await NatsReader(server, prefix).read()]
    assert got == [sent[0]["id"], sent[2]["id"]]
