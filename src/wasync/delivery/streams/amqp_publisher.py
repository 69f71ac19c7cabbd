"""RabbitMQ: a durable topic exchange, routing key `<session>.<event>`, confirmed.

Messages are persistent (delivery mode 2) with `message_id` = the event id, and the
channel is in publisher-confirm mode: an event counts as published only once the
broker confirms it. A call's messages go out as one write and their confirms are
awaited together.

Why one write: aio-pika's `Exchange.publish` (and aiormq's `basic_publish` under
it) takes the channel lock, writes and drains once per message; on this project's
2-core reference machine that capped a pipelined batch near 5,000 events/s, the
Python side being the bottleneck. `_publish_frames` does what `basic_publish` does
(delivery tag, confirmation future, the same frames through the same writer) for a
whole batch under one lock acquisition. It leans on aiormq's channel attributes, so
aiormq is pinned to its 7.x line in pyproject.toml and the integration tests cover it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import aio_pika
import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.header import ContentHeader
from yarl import URL

from wasync.delivery.streams.publisher import (
    Failed,
    Outgoing,
    Published,
    Publisher,
    PublishResult,
)
from wasync.delivery.streams.targets import AmqpTarget

PERSISTENT = 2

# Failures of the target itself, not of the network: retrying cannot help.
_PERMANENT = (
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.ConnectionNotAllowed,  # e.g. no such vhost
    aiormq.exceptions.ChannelAccessRefused,  # the user may not use this vhost/exchange
    aiormq.exceptions.ChannelPreconditionFailed,  # the exchange exists with another type
    aiormq.exceptions.IncompatibleProtocolError,
)


class AmqpPublisher(Publisher[AmqpTarget]):
    kind = "rabbitmq"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connection: AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None

    async def _connect(self) -> None:
        # Held before connecting, so that a failed connect is closed by `_disconnect`
        # (aio-pika would otherwise close it from a finalizer, outside any loop).
        self._connection = connection = aio_pika.Connection(
            URL(self.target.url), client_properties={"connection_name": "wasync"}
        )
        await connection.connect(timeout=self.settings.timeout)
        channel: AbstractChannel = await connection.channel(publisher_confirms=True)
        await channel.declare_exchange(
            self.target.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._channel = await channel.get_underlay_channel()

    async def _send(self, items: Sequence[Outgoing], results: list[PublishResult | None]) -> None:
        assert self._channel is not None
        confirmations, closed = await _publish_frames(
            self._channel,
            self.target.exchange,
            [self._frames(e) for e in items],
        )
        try:
            for i, confirmation in enumerate(confirmations):
                if not confirmation.done():
                    await asyncio.wait((confirmation, closed), return_when=asyncio.FIRST_COMPLETED)
                    if not confirmation.done():
                        closed.result()  # the channel's close reason
                        raise aiormq.exceptions.ChannelInvalidStateError("the channel closed")
                try:
                    answer = confirmation.result()
                except aiormq.exceptions.DeliveryError as exc:
                    answer = exc.frame
                if isinstance(answer, spec.Basic.Ack):
                    results[i] = Published()
                else:  # Nack or Reject: the broker could not take it now (e.g. a full disk)
                    results[i] = Failed(f"rabbitmq: {self.shown} refused the event ({answer!r})")
        finally:
            closed.cancel()
            for confirmation in confirmations:
                confirmation.cancel()

    def _frames(self, item: Outgoing) -> tuple[str, bytes, spec.Basic.Properties]:
        properties = spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=item.id,
            message_type=item.event,
            app_id="wasync",
            timestamp=_timestamp(item.timestamp),
        )
        return self.target.routing_key(item.session, item.event), item.body, properties

    async def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await connection.close()

    def classify(self, exc: BaseException) -> Failed:
        where = self.shown
        if isinstance(
            exc,
            aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError,
        ):
            return Failed(f"rabbitmq: {where} refused the credentials", permanent=True)
        if _refused_open(exc):
            vhost = self.target.url.rsplit("/", 1)[1] if self.target.url.count("/") > 2 else ""
            return Failed(
                f"rabbitmq: {where} refused to open vhost {unquote(vhost) or '/'!r} "
                "(no such vhost, or the user may not use it)",
                permanent=True,
            )
        if isinstance(exc, _PERMANENT):
            return Failed(f"rabbitmq: {where}: {self.reason(exc)}", permanent=True)
        if isinstance(exc, OSError | ConnectionError | aiormq.exceptions.AMQPError):
            return Failed(f"rabbitmq: could not reach {where}: {self.reason(exc)}")
        return Failed(f"rabbitmq: {where}: {self.reason(exc)}")


def _refused_open(exc: BaseException) -> bool:
    # aiormq reports a Connection.Close answering Connection.Open as an unexpected
    # frame, without the reply code: the broker refused the vhost.
    text = str(exc)
    return (
        isinstance(exc, aiormq.exceptions.InvalidFrameError)
        and "Connection.OpenOk" in text
        and "Connection.Close" in text
    )


def _timestamp(value: Any) -> dt.datetime:
    seconds = float(value) if isinstance(value, int | float) else time.time()
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


async def _publish_frames(
    channel: aiormq.abc.AbstractChannel,
    exchange: str,
    messages: Sequence[tuple[str, bytes, spec.Basic.Properties]],
) -> tuple[list[asyncio.Future[Any]], asyncio.Future[Any]]:
    """Publish many messages in one write; their confirmation futures, in order, and
    a future that fails when the channel or its connection closes.

    Mirrors `aiormq.Channel.basic_publish` (publisher-confirm mode, not mandatory)
    for a batch: each message takes the next delivery tag and registers its
    confirmation before its frames are written, all under the channel's lock. The
    confirmations are plain futures, not kept in aiormq's future store (its
    bookkeeping cost about a seventh of a batch): the one `closed` future, kept there,
    is what aiormq rejects when the channel goes, and waiting stops on it.
    """
    ch: Any = channel
    if not ch.publisher_confirms:
        raise aiormq.exceptions.ChannelInvalidStateError("the channel does not confirm")
    confirmations: list[asyncio.Future[Any]] = []
    frames: list[Any] = []
    async with ch.lock:
        if ch.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the channel is closed")
        first_tag = ch.delivery_tag
        closed = ch.create_future()
        loop = asyncio.get_running_loop()
        # One Publish method per routing key: pamqp validates the names of each one it
        # makes, which cost more than the rest of a message (py-spy: 17% of a batch).
        methods: dict[str, spec.Basic.Publish] = {}
        for routing_key, body, properties in messages:
            ch.delivery_tag += 1
            confirmation = loop.create_future()
            ch.confirmations[ch.delivery_tag] = confirmation
            confirmations.append(confirmation)
            method = methods.get(routing_key)
            if method is None:
                method = spec.Basic.Publish(exchange=exchange, routing_key=routing_key)
                methods[routing_key] = method
            frames.append(method)
            frames.append(ContentHeader(properties=properties, body_size=len(body)))
            frames.extend(ch._split_body(body))
        drained = ch.create_future()
        try:
            await ch.write_queue.put(
                ChannelFrame.marshall(channel_number=ch.number, frames=frames, drain_future=drained)
            )
        except BaseException:
            # Nothing was queued: give the delivery tags back, as basic_publish does.
            for tag in range(first_tag + 1, ch.delivery_tag + 1):
                ch.confirmations.pop(tag, None)
            ch.delivery_tag = first_tag
            for confirmation in confirmations:
                confirmation.cancel()
            closed.cancel()
            raise
        await drained
    return confirmations, closed
