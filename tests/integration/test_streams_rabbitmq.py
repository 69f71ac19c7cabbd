"""The RabbitMQ publisher against the real server: routing keys, properties, confirms."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from wasync.delivery.envelope import Event, body_of
from wasync.delivery.streams.pool import publisher_for
from wasync.delivery.streams.publisher import Failed, Published, StreamSettings

from .brokers import AMQP_ENV, AmqpReader, amqp_endpoint, proxy_to, require, unique, via

SETTINGS = StreamSettings(timeout=5.0)
SECRET = "n0t-the-Passw0rd-42"


@pytest.fixture
def server() -> str:
    return require(AMQP_ENV)


@pytest.fixture
async def reader(server: str) -> AsyncIterator[AmqpReader]:
    found = AmqpReader(server, unique("wt"))
    await found.start()
    yield found
    await found.stop()


def envelopes(n: int, sessions: tuple[str, ...] = ("alpha", "beta")) -> list[dict[str, Any]]:
    topics = ("message", "session.status", "reaction")
    return [
        Event.occurrence(sessions[i % len(sessions)], topics[i % 3], {"n": i}).envelope()
        for i in range(n)
    ]


async def test_each_envelope_is_a_persistent_message_with_its_id(
    server: str, reader: AmqpReader
) -> None:
    sent = envelopes(6, ("alpha", "team.b"))
    publisher = publisher_for(amqp_endpoint(server, reader.exchange), SETTINGS)
    try:
        assert await publisher.publish_many(sent) == [Published()] * 6
    finally:
        await publisher.close()
    got = await reader.read()
    assert [g.where for g in got] == [
        f"{e['session'].replace('.', '_')}.{e['event']}" for e in sent
    ]
    assert [g.body for g in got] == [body_of(e) for e in sent]
    for g, e in zip(got, sent, strict=True):
        assert g.meta["message_id"] == e["id"]
        assert g.meta["delivery_mode"] == 2  # persistent
        assert g.meta["content_type"] == "application/json"
        assert (g.meta["type"], g.meta["app_id"]) == (e["event"], "wasync")
        assert int(g.meta["timestamp"].timestamp()) == int(e["timestamp"])


async def test_the_exchange_is_a_durable_topic_exchange(server: str) -> None:
    import aio_pika
    import aiormq.exceptions

    exchange = unique("wt")
    publisher = publisher_for(amqp_endpoint(server, exchange), SETTINGS)
    connection = await aio_pika.connect(server)
    try:
        assert await publisher.publish_many(envelopes(1)) == [Published()]
        channel = await connection.channel()
        # Declaring it again the same way is accepted; any other way is refused.
        await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=False)
    finally:
        await publisher.close()
        await (await connection.channel()).exchange_delete(exchange)
        await connection.close()


async def test_a_batch_keeps_its_order(server: str, reader: AmqpReader) -> None:
    sent = envelopes(600, ("alpha", "beta", "gamma"))
    publisher = publisher_for(amqp_endpoint(server, reader.exchange), SETTINGS)
    try:
        first = await publisher.publish_many(sent[:300])
        second = await publisher.publish_many(sent[300:])
    finally:
        await publisher.close()
    assert first + second == [Published()] * 600
    assert [g.json()["id"] for g in await reader.read()] == [e["id"] for e in sent]


async def test_wrong_credentials_are_permanent_and_never_shown(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(server)
    bad = f"amqp://{parts.username or 'guest'}:{SECRET}@{parts.hostname}:{parts.port or 5672}/"
    caplog.set_level(logging.DEBUG)
    publisher = publisher_for(amqp_endpoint(bad, unique("wt")), SETTINGS)
    results = await publisher.publish_many(envelopes(2))
    await publisher.close()
    assert all(isinstance(r, Failed) and r.permanent for r in results)
    assert "refused the credentials" in results[0].error  # type: ignore[union-attr]
    assert SECRET not in results[0].error  # type: ignore[union-attr]
    assert ":****@" in results[0].error  # type: ignore[union-attr]
    assert SECRET not in caplog.text


async def test_a_missing_vhost_and_an_exchange_of_another_type_are_permanent(
    server: str,
) -> None:
    import aio_pika

    nowhere = amqp_endpoint(server.rstrip("/") + "/" + unique("no-vhost-"), "x")
    publisher = publisher_for(nowhere, SETTINGS)
    (result,) = await publisher.publish_many(envelopes(1))
    await publisher.close()
    assert isinstance(result, Failed) and result.permanent
    assert "refused to open vhost" in result.error

    exchange = unique("wt")
    connection = await aio_pika.connect(server)
    channel = await connection.channel()
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    try:
        publisher = publisher_for(amqp_endpoint(server, exchange), SETTINGS)
        (result,) = await publisher.publish_many(envelopes(1))
        await publisher.close()
    finally:
        await channel.exchange_delete(exchange)
        await connection.close()
    assert isinstance(result, Failed) and result.permanent
    assert "PRECONDITION_FAILED" in result.error


async def test_a_cut_connection_fails_the_call_and_the_next_one_reconnects(
    server: str, reader: AmqpReader
) -> None:
    async with proxy_to(server) as proxy:
        url = amqp_endpoint(via(server, proxy.port), reader.exchange)
        publisher = publisher_for(url, StreamSettings(timeout=2.0))
        try:
            assert await publisher.publish_many(envelopes(2)) == [Published()] * 2
            proxy.cut()
            down = await publisher.publish_many(envelopes(2))
            assert all(isinstance(r, Failed) and not r.permanent for r in down)
            proxy.restore()
            assert await publisher.publish_many(envelopes(3)) == [Published()] * 3
        finally:
            await publisher.close()
    assert len(await reader.read()) == 5


async def test_a_channel_closed_under_a_batch_fails_it_at_once_and_the_next_redeclares(
    server: str,
) -> None:
    """The broker closes the channel (its exchange was deleted meanwhile): the batch's
    confirmations never come, and the call fails then, not at its deadline."""
    import asyncio

    import aio_pika

    exchange = unique("wt")
    publisher = publisher_for(amqp_endpoint(server, exchange), StreamSettings(timeout=120.0))
    try:
        assert await publisher.publish_many(envelopes(2)) == [Published()] * 2
        connection = await aio_pika.connect(server)
        try:
            await (await connection.channel()).exchange_delete(exchange)
        finally:
            await connection.close()
        async with asyncio.timeout(60):  # far below the 120 s deadline
            down = await publisher.publish_many(envelopes(50))
        assert all(isinstance(r, Failed) and not r.permanent for r in down), down[0]
        assert await publisher.publish_many(envelopes(3)) == [Published()] * 3
    finally:
        await publisher.close()
        connection = await aio_pika.connect(server)
        try:
            await (await connection.channel()).exchange_delete(exchange)
        finally:
            await connection.close()
