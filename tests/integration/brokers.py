"""The brokers on this machine for event-stream tests: URLs, readers, a cuttable proxy.

Each broker's URL comes from an environment variable (default: the loopback
service); a test whose broker does not answer is skipped, saying so. Every test
uses names of its own (streams, exchanges, subject prefixes) and removes them, so
parallel runs do not collide. Nothing here ever stops a broker: an outage is made
by cutting a `TcpProxy` between wasync and the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

NATS_ENV = "WASYNC_TEST_NATS_URL"
AMQP_ENV = "WASYNC_TEST_AMQP_URL"
REDIS_ENV = "WASYNC_TEST_REDIS_URL"
DEFAULTS = {
    NATS_ENV: "nats://127.0.0.1:4222",
    AMQP_ENV: "amqp://guest:guest@127.0.0.1:5672/",
    REDIS_ENV: "redis://127.0.0.1:6379/0",
}


def server_url(env: str) -> str:
    return os.environ.get(env) or DEFAULTS[env]


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = {"nats": 4222, "amqp": 5672, "redis": 6379}[parts.scheme]
    return parts.hostname or "127.0.0.1", parts.port or default


def require(env: str) -> str:
    """The broker's URL, or skip the test when nothing answers there."""
    url = server_url(env)
    host, port = host_port(url)
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except OSError as exc:
        pytest.skip(f"no broker at {host}:{port} ({exc}); set {env} or start it (.ci/run does)")
    return url


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def via(url: str, port: int) -> str:
    """The same URL through a local proxy listening on `port`."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{userinfo}127.0.0.1:{port}", parts.path, parts.query, ""))


# Endpoint URLs (what a user configures) from a server URL and a fresh name.


def nats_endpoint(server: str, prefix: str) -> str:
    return f"{server.rstrip('/')}/{prefix}"


def amqp_endpoint(server: str, exchange: str) -> str:
    base = server if urlsplit(server).path else server + "/"
    return f"{base}?exchange={exchange}"


def redis_endpoint(server: str, stream: str, **params: Any) -> str:
    query = "&".join([f"stream={stream}", *(f"{k}={v}" for k, v in params.items())])
    return f"{server}?{query}"


# Readers: what a consumer of each broker sees.


@dataclass
class Got:
    """One message as a consumer received it."""

    where: str  # subject, routing key or stream entry id
    body: bytes
    meta: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.body)


class NatsReader:
    def __init__(self, server: str, stream: str) -> None:
        self.server = server
        self.stream = stream

    async def read(self) -> list[Got]:
        import nats

        nc = await nats.connect(self.server, allow_reconnect=False)
        try:
            js = nc.jetstream()
            info = await js.stream_info(self.stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(self.stream, seq)
                out.append(Got(msg.subject or "", msg.data or b"", dict(msg.headers or {})))
            return out
        finally:
            await nc.close()

    async def count(self) -> int:
        import nats
        import nats.js.errors

        nc = await nats.connect(self.server, allow_reconnect=False)
        try:
            try:
                return int((await nc.jetstream().stream_info(self.stream)).state.messages)
            except nats.js.errors.NotFoundError:
                return 0
        finally:
            await nc.close()

    async def delete(self) -> None:
        import nats
        import nats.js.errors

        nc = await nats.connect(self.server, allow_reconnect=False)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(self.stream)
        finally:
            await nc.close()


class AmqpReader:
    """A queue bound to the exchange with '#' before anything is published."""

    def __init__(self, server: str, exchange: str) -> None:
        self.server = server
        self.exchange = exchange
        self.got: list[Got] = []
        self._connection: Any = None
        self._queue: Any = None

    async def start(self) -> None:
        import aio_pika

        self._connection = await aio_pika.connect(self.server)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await channel.declare_queue(exclusive=True)
        await self._queue.bind(exchange, "#")

    async def read(self) -> list[Got]:
        while True:
            message = await self._queue.get(no_ack=True, fail=False)
            if message is None:
                return self.got
            self.got.append(
                Got(
                    message.routing_key or "",
                    message.body,
                    {
                        "message_id": message.message_id,
                        "delivery_mode": int(message.delivery_mode),
                        "content_type": message.content_type,
                        "type": message.type,
                        "app_id": message.app_id,
                        "timestamp": message.timestamp,
                    },
                )
            )

    async def stop(self) -> None:
        if self._connection is None:
            return
        channel = await self._connection.channel()
        await channel.exchange_delete(self.exchange)
        await self._connection.close()


class RedisReader:
    def __init__(self, server: str, stream: str) -> None:
        self.server = server
        self.stream = stream

    async def read(self) -> list[Got]:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(self.server)
        try:
            entries = await client.xrange(self.stream)
        finally:
            await client.aclose()
        out = []
        for entry_id, fields in entries:
            meta = {k.decode(): v.decode() for k, v in fields.items() if k != b"envelope"}
            out.append(Got(entry_id.decode(), fields.get(b"envelope", b""), meta))
        return out

    async def length(self) -> int:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(self.server)
        try:
            return int(await client.xlen(self.stream))
        finally:
            await client.aclose()

    async def delete(self) -> None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(self.server)
        try:
            await client.delete(self.stream)
        finally:
            await client.aclose()


# A TCP proxy on 127.0.0.1 that a test can cut: the broker "goes away" for wasync
# while the shared service keeps running for everyone else.


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "open"  # open | refuse (accept and close at once) | blackhole (silence)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self, mode: str = "refuse") -> None:
        """Break every open connection; new ones are refused (or go silent)."""
        self.mode = mode
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.mode = "open"

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self.mode == "blackhole":
            return  # kept open, never answered (until cut or stopped)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._links.add(task)
            task.add_done_callback(self._links.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()


@contextlib.asynccontextmanager
async def proxy_to(url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(host_port(url))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


# One broker destination of a test, whatever the kind: its endpoint URL (directly or
# through a proxy) and what a consumer received there.


class Destination:
    kind: str
    env: str

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = unique("wt")

    def url(self, proxy_port: int | None = None) -> str:
        server = self.server if proxy_port is None else via(self.server, proxy_port)
        return self._url(server)

    def _url(self, server: str) -> str:
        raise NotImplementedError

    async def setup(self) -> None:
        pass

    async def received(self) -> list[Got]:
        raise NotImplementedError

    async def cleanup(self) -> None:
        pass


class NatsDestination(Destination):
    kind, env = "nats", NATS_ENV

    def _url(self, server: str) -> str:
        return nats_endpoint(server, self.name)

    async def received(self) -> list[Got]:
        if await NatsReader(self.server, self.name).count() == 0:
            return []
        return await NatsReader(self.server, self.name).read()

    async def cleanup(self) -> None:
        await NatsReader(self.server, self.name).delete()


class AmqpDestination(Destination):
    kind, env = "rabbitmq", AMQP_ENV

    def __init__(self, server: str) -> None:
        super().__init__(server)
        self.reader = AmqpReader(server, self.name)

    def _url(self, server: str) -> str:
        return amqp_endpoint(server, self.name)

    async def setup(self) -> None:
        await self.reader.start()

    async def received(self) -> list[Got]:
        return list(await self.reader.read())

    async def cleanup(self) -> None:
        await self.reader.stop()


class RedisDestination(Destination):
    kind, env = "redis", REDIS_ENV

    def _url(self, server: str) -> str:
        return redis_endpoint(server, self.name)

    async def received(self) -> list[Got]:
        return await RedisReader(self.server, self.name).read()

    async def cleanup(self) -> None:
        await RedisReader(self.server, self.name).delete()


DESTINATIONS: dict[str, type[Destination]] = {
    "nats": NatsDestination,
    "rabbitmq": AmqpDestination,
    "redis": RedisDestination,
}


@contextlib.asynccontextmanager
async def destination(kind: str) -> AsyncIterator[Destination]:
    cls = DESTINATIONS[kind]
    found = cls(require(cls.env))
    await found.setup()
    try:
        yield found
    finally:
        await found.cleanup()


def where_of(kind: str, envelope: dict[str, Any], name: str) -> str | None:
    """The subject or routing key an envelope must arrive under (None for Redis)."""
    words = f"{envelope['session'].replace('.', '_')}.{envelope['event']}"
    if kind == "nats":
        return f"{name}.{words}"
    if kind == "rabbitmq":
        return words
    return None
