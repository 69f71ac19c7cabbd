"""The Redis Streams publisher against the real server: fields, order, trimming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from wasync.delivery.envelope import Event, body_of
from wasync.delivery.streams.pool import publisher_for
from wasync.delivery.streams.publisher import Failed, Published, StreamSettings

from .brokers import REDIS_ENV, RedisReader, proxy_to, redis_endpoint, require, unique, via

SETTINGS = StreamSettings(timeout=5.0)


@pytest.fixture
def server() -> str:
    return require(REDIS_ENV)


@pytest.fixture
async def reader(server: str) -> AsyncIterator[RedisReader]:
    found = RedisReader(server, unique("wt"))
    yield found
    await found.delete()


def envelopes(n: int, sessions: tuple[str, ...] = ("alpha", "beta")) -> list[dict[str, Any]]:
    topics = ("message", "contact", "message.delete")
    return [
        Event.occurrence(sessions[i % len(sessions)], topics[i % 3], {"n": i}).envelope()
        for i in range(n)
    ]


async def test_each_envelope_is_an_entry_with_its_id(server: str, reader: RedisReader) -> None:
    sent = envelopes(6, ("alpha", "team.b"))
    publisher = publisher_for(redis_endpoint(server, reader.stream), SETTINGS)
    try:
        assert await publisher.publish_many(sent) == [Published()] * 6
    finally:
        await publisher.close()
    got = await reader.read()
    assert [g.meta for g in got] == [
        {"id": e["id"], "event": e["event"], "session": e["session"]} for e in sent
    ]
    assert [g.body for g in got] == [body_of(e) for e in sent]


async def test_a_batch_keeps_its_order(server: str, reader: RedisReader) -> None:
    sent = envelopes(700, ("alpha", "beta", "gamma"))
    publisher = publisher_for(redis_endpoint(server, reader.stream), SETTINGS)
    try:
        first = await publisher.publish_many(sent[:350])
        second = await publisher.publish_many(sent[350:])
    finally:
        await publisher.close()
    assert first + second == [Published()] * 700
    assert [g.meta["id"] for g in await reader.read()] == [e["id"] for e in sent]


async def test_maxlen_trims_the_stream_roughly(server: str, reader: RedisReader) -> None:
    capped = publisher_for(redis_endpoint(server, reader.stream, maxlen=10), SETTINGS)
    try:
        for _ in range(5):
            assert await capped.publish_many(envelopes(200)) == [Published()] * 200
    finally:
        await capped.close()
    length = await reader.length()
    # `MAXLEN ~` trims whole nodes: at least the cap is kept, far fewer than sent.
    assert 10 <= length < 500

    uncapped = publisher_for(
        redis_endpoint(server, reader.stream), StreamSettings(timeout=5.0, redis_maxlen=0)
    )
    try:
        assert await uncapped.publish_many(envelopes(300)) == [Published()] * 300
    finally:
        await uncapped.close()
    assert await reader.length() == length + 300


async def test_a_key_of_another_type_is_refused_for_good(server: str, reader: RedisReader) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(server)
    await client.set(reader.stream, "not a stream")
    await client.aclose()
    publisher = publisher_for(redis_endpoint(server, reader.stream), SETTINGS)
    results = await publisher.publish_many(envelopes(2))
    await publisher.close()
    assert all(isinstance(r, Failed) and r.permanent for r in results)
    assert "WRONGTYPE" in results[0].error  # type: ignore[union-attr]


async def test_an_unreachable_server_is_transient_and_then_recovers(
    server: str, reader: RedisReader
) -> None:
    async with proxy_to(server) as proxy:
        url = redis_endpoint(via(server, proxy.port), reader.stream)
        publisher = publisher_for(url, StreamSettings(timeout=1.0))
        try:
            assert await publisher.publish_many(envelopes(2)) == [Published()] * 2
            proxy.cut()
            down = await publisher.publish_many(envelopes(2))
            assert all(isinstance(r, Failed) and not r.permanent for r in down)
            assert "could not reach" in down[0].error  # type: ignore[union-attr]
            proxy.cut("blackhole")
            silent = await publisher.publish_many(envelopes(2))
            assert all(isinstance(r, Failed) and not r.permanent for r in silent)
            proxy.restore()
            assert await publisher.publish_many(envelopes(3)) == [Published()] * 3
        finally:
            await publisher.close()
    assert await reader.length() == 5
