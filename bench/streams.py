"""Event streams: events/s of wasync's broker publishers against each broker's own client.

For each broker (NATS JetStream, RabbitMQ, Redis Streams) the same N message
envelopes (from the simulator network, as deliveries carry them) are published, in
the same run, three ways, each into fresh names with a consumer counting what
arrived:

- `client_loop`: the broker's client alone, one awaited publish after the other (the
  tight loop an application writes first);
- `client_pipelined`: the client alone at its own best: NATS `publish_async` with the
  acks awaited per batch, aio-pika `Exchange.publish` gathered per batch, redis-py
  one pipeline per batch;
- `wasync`: `Publisher.publish_many` per batch (the publisher alone);
- `wasync_delivery`: the whole delivery path: the events recorded for a broker
  endpoint in a fresh database (SQLite unless `--database`): appended to its log,
  then a runtime with the delivery service started and timed until the consumer has
  them all: the endpoint's pump reads `WASYNC_STREAM_BATCH` events at a time,
  publishes them and moves the endpoint's position past them.

Every variant has the same guarantees: JetStream acks with `Nats-Msg-Id`; RabbitMQ
persistent messages with publisher confirms into a durable topic exchange; Redis
`XADD ... MAXLEN ~`. The consumer is another process (started first, so that it
counts from the first event); events/s = N / (last arrival - first publish).
Each figure is the median of `--rounds` runs. Ratios compare `wasync` and
`wasync_delivery` with both client variants. Prints one JSON object; a broker that does
not answer is reported as skipped.

    python bench/streams.py --events 20000 --batch 500 [--database postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from wasync.config import Settings
from wasync.delivery.envelope import Event, body_of
from wasync.delivery.streams.pool import publisher_for
from wasync.delivery.streams.publisher import Published, StreamSettings
from wasync.engines.simulator import Network, NetworkConfig
from wasync.sync.publish import message_data

SERVERS = {
    "nats": os.environ.get("WASYNC_TEST_NATS_URL") or "nats://127.0.0.1:4222",
    "rabbitmq": os.environ.get("WASYNC_TEST_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/",
    "redis": os.environ.get("WASYNC_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0",
}
MAXLEN = 1_000_000
CONSUMER_TIMEOUT = 120.0


def events(n: int) -> list[Event]:
    chats = max(10, n // 200)
    net = Network(
        NetworkConfig(seed=7, contacts=chats, groups=2, individual_chats=chats - 2, messages=n)
    )
    out: list[Event] = []
    for chat in net.chat_jids():
        for m in net.messages(chat):
            k = m.key
            data = {"session": "bench", **message_data(m)}
            out.append(
                Event.of_fact("bench", "message", data, k.chat_jid, k.sender_jid, k.message_id)
            )
    return out[:n]


def envelopes(n: int) -> list[dict[str, Any]]:
    return [e.envelope() for e in events(n)]


def endpoint_url(kind: str, name: str) -> str:
    server = SERVERS[kind]
    if kind == "nats":
        return f"{server.rstrip('/')}/{name}"
    if kind == "rabbitmq":
        return f"{server}?exchange={name}"
    return f"{server}?stream={name}&maxlen={MAXLEN}"


# The consumer: a separate process that counts arrivals and reports the last one.


async def consume(kind: str, name: str, n: int) -> dict[str, Any]:
    server = SERVERS[kind]
    count = 0
    last = 0.0
    done = asyncio.Event()
    if kind == "nats":
        import nats

        nc = await nats.connect(server)

        async def on_msg(_: Any) -> None:
            nonlocal count, last
            count += 1
            if count >= n:
                last = time.monotonic()
                done.set()

        # The subjects flow through core NATS too: a plain subscription sees each
        # message the stream stores, without a JetStream consumer's acks.
        await nc.subscribe(f"{name}.>", cb=on_msg, pending_msgs_limit=10 * n)
        await nc.flush()
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), CONSUMER_TIMEOUT)
        await nc.close()
    elif kind == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(server)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")

        async def on_message(message: Any) -> None:
            nonlocal count, last
            count += 1
            if count % 1000 == 0 or count >= n:
                await message.ack(multiple=True)
            if count >= n:
                last = time.monotonic()
                done.set()

        await queue.consume(on_message)
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), CONSUMER_TIMEOUT)
        await connection.close()
    else:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(server)
        print("ready", flush=True)
        cursor = "0-0"
        async with asyncio.timeout(CONSUMER_TIMEOUT):
            while count < n:
                got = await client.xread({name: cursor}, count=5000, block=1000)
                for _, entries in got:
                    count += len(entries)
                    cursor = entries[-1][0]
            last = time.monotonic()
        await client.aclose()
    return {"count": count, "last": last}


class Consumer:
    def __init__(self, kind: str, name: str, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--consume", kind, name, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"the {kind} consumer did not start: {line!r}")

    def result(self) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=CONSUMER_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        if self.proc.returncode != 0:
            raise RuntimeError(f"the consumer failed ({self.proc.returncode})")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


# The three ways to publish, each returning once every event is acknowledged.

Publish = Callable[[str, list[dict[str, Any]], int], Awaitable[None]]


async def nats_client(name: str, sent: list[dict[str, Any]], batch: int, loop: bool) -> None:
    import nats

    nc = await nats.connect(SERVERS["nats"])
    js = nc.jetstream(publish_async_max_pending=batch * 2)
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    subject = f"{name}.bench.message"
    try:
        t = time.monotonic()
        for start in range(0, len(sent), batch):
            chunk = sent[start : start + batch]
            if loop:
                for e in chunk:
                    await js.publish(subject, body_of(e), headers={"Nats-Msg-Id": e["id"]})
                continue
            futures = [
                await js.publish_async(subject, body_of(e), headers={"Nats-Msg-Id": e["id"]})
                for e in chunk
            ]
            await asyncio.gather(*futures)
        _started[name] = t
    finally:
        await nc.close()


async def amqp_client(name: str, sent: list[dict[str, Any]], batch: int, loop: bool) -> None:
    import aio_pika

    connection = await aio_pika.connect(SERVERS["rabbitmq"])
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)

    def message(e: dict[str, Any]) -> aio_pika.Message:
        return aio_pika.Message(
            body_of(e),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=e["id"],
            type=e["event"],
            app_id="wasync",
        )

    try:
        t = time.monotonic()
        for start in range(0, len(sent), batch):
            chunk = sent[start : start + batch]
            if loop:
                for e in chunk:
                    await exchange.publish(message(e), "bench.message", mandatory=False)
                continue
            await asyncio.gather(
                *(exchange.publish(message(e), "bench.message", mandatory=False) for e in chunk)
            )
        _started[name] = t
    finally:
        await connection.close()


async def redis_client(name: str, sent: list[dict[str, Any]], batch: int, loop: bool) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(SERVERS["redis"])

    def fields(e: dict[str, Any]) -> dict[str, Any]:
        return {"id": e["id"], "event": e["event"], "session": e["session"], "envelope": body_of(e)}

    try:
        t = time.monotonic()
        for start in range(0, len(sent), batch):
            chunk = sent[start : start + batch]
            if loop:
                for e in chunk:
                    await client.xadd(name, fields(e), maxlen=MAXLEN, approximate=True)
                continue
            pipe = client.pipeline(transaction=False)
            for e in chunk:
                pipe.xadd(name, fields(e), maxlen=MAXLEN, approximate=True)
            await pipe.execute()
        _started[name] = t
    finally:
        await client.aclose()


CLIENTS = {"nats": nats_client, "rabbitmq": amqp_client, "redis": redis_client}
_started: dict[str, float] = {}


async def wasync_publisher(kind: str, name: str, sent: list[dict[str, Any]], batch: int) -> None:
    settings = StreamSettings(timeout=60.0, redis_maxlen=MAXLEN)
    publisher = publisher_for(endpoint_url(kind, name), settings)
    try:
        t = time.monotonic()
        for start in range(0, len(sent), batch):
            results = await publisher.publish_many(sent[start : start + batch])
            bad = [r for r in results if not isinstance(r, Published)]
            if bad:
                raise RuntimeError(f"{kind}: {len(bad)} events failed: {bad[0]}")
        _started[name] = t
    finally:
        await publisher.close()


async def wasync_delivery(
    kind: str, name: str, queued: list[Event], batch: int, database: str | None
) -> None:
    """The delivery path: `queued` recorded for an endpoint first, then a runtime
    delivering them."""
    from wasync.delivery import admin, install
    from wasync.delivery.worker import Delivery
    from wasync.runtime import Runtime
    from wasync.store.db import Database
    from wasync.store.sessions import ensure_session

    tmp = tempfile.mkdtemp(prefix="wasync-bench-")  # removed once counted (run_once)
    settings = Settings(
        data_dir=tmp,
        database_url=database,
        stream_batch=batch,
        stream_timeout=60.0,
        stream_redis_maxlen=MAXLEN,
        webhook_poll_interval=0.05,
    )
    db = Database(settings.resolved_database_url())
    db.migrate()
    # A session of its own (its name is the run's): with --database, earlier runs'
    # sessions and endpoints are in the same database, and must not get these events.
    try:
        delivery = Delivery(settings, db)
        with db.write() as conn:
            ensure_session(conn, name, "simulator")
        url = endpoint_url(kind, name)
        await admin.add_endpoint(db, delivery.guard, name, url, ["message"])
        for start in range(0, len(queued), 5000):
            delivery.enqueue(name, queued[start : start + 5000])
    finally:
        db.close()
    runtime = Runtime(settings)
    install(runtime)
    t = time.monotonic()
    await runtime.start()
    _started[name] = t
    _runtimes[name] = (runtime, tmp)


_runtimes: dict[str, Any] = {}  # runtimes still delivering, stopped once counted


def forget_session(database: str, name: str) -> None:
    """Remove a run's endpoint (its log goes with it) and session from a --database."""
    from sqlalchemy import delete

    from wasync.store.db import Database
    from wasync.store.schema import sessions, webhook_endpoints

    db = Database(database)
    try:
        with db.write() as conn:
            conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.session_name == name))
            conn.execute(delete(sessions).where(sessions.c.name == name))
    finally:
        db.close()


async def cleanup(kind: str, name: str) -> None:
    if kind == "nats":
        import nats

        nc = await nats.connect(SERVERS["nats"])
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()
    elif kind == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(SERVERS["rabbitmq"])
        await (await connection.channel()).exchange_delete(name)
        await connection.close()
    else:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(SERVERS["redis"])
        await client.delete(name)
        await client.aclose()


async def run_once(
    kind: str,
    variant: str,
    queued: list[Event],
    sent: list[dict[str, Any]],
    batch: int,
    database: str | None,
) -> float:
    name = f"bench{uuid.uuid4().hex[:10]}"
    if kind == "nats" and variant in ("wasync", "wasync_delivery"):
        # The publisher creates its stream on connect; make it now, as the client does,
        # so both start from the same state.
        import nats

        nc = await nats.connect(SERVERS["nats"])
        await nc.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
        await nc.close()
    consumer = await asyncio.to_thread(Consumer, kind, name, len(sent))
    try:
        if variant == "wasync":
            await wasync_publisher(kind, name, sent, batch)
        elif variant == "wasync_delivery":
            await wasync_delivery(kind, name, queued, batch, database)
        else:
            await CLIENTS[kind](name, sent, batch, variant == "client_loop")
        got = await asyncio.to_thread(consumer.result)
    finally:
        consumer.proc.kill() if consumer.proc.poll() is None else None
        running = _runtimes.pop(name, None)
        if running is not None:
            runtime = running[0]
            await runtime.stop()
            if database is not None:
                forget_session(database, name)
            shutil.rmtree(running[1], ignore_errors=True)
        await cleanup(kind, name)
    if got["count"] < len(sent):
        raise RuntimeError(f"{kind}/{variant}: the consumer counted {got['count']} of {len(sent)}")
    return len(sent) / (got["last"] - _started.pop(name))


async def reachable(kind: str) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(SERVERS[kind])
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                parts.hostname, parts.port or {"nats": 4222, "rabbitmq": 5672, "redis": 6379}[kind]
            ),
            2.0,
        )
    except (OSError, TimeoutError) as exc:
        return f"{parts.hostname}:{parts.port}: {exc}"
    writer.close()
    await writer.wait_closed()
    return None


VARIANTS = ("client_loop", "client_pipelined", "wasync", "wasync_delivery")


async def bench(
    kinds: list[str],
    n: int,
    batch: int,
    rounds: int,
    database: str | None,
    variants: tuple[str, ...] = VARIANTS,
) -> dict[str, Any]:
    queued = events(n)
    sent = [e.envelope() for e in queued]
    out: dict[str, Any] = {
        "events": len(sent),
        "batch": batch,
        "rounds": rounds,
        "delivery_database": "postgresql" if database else "sqlite",
        "envelope_bytes": round(statistics.mean(len(body_of(e)) for e in sent)),
        "brokers": {},
    }
    for kind in kinds:
        why_not = await reachable(kind)
        if why_not is not None:
            out["brokers"][kind] = {"skipped": why_not}
            continue
        rates: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for variant in rates:  # interleaved, so a busy moment hits all variants alike
                rates[variant].append(await run_once(kind, variant, queued, sent, batch, database))
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratios = {
            f"{ours}_vs_{theirs}": round(med[ours] / med[theirs], 2)
            for ours in ("wasync", "wasync_delivery")
            for theirs in ("client_loop", "client_pipelined")
            if ours in med and theirs in med
        }
        out["brokers"][kind] = {
            **{f"{k}_events_per_s": round(v) for k, v in med.items()},
            **ratios,
            "all_runs": {k: [round(r) for r in v] for k, v in rates.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", default="nats,rabbitmq,redis")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="which ways to publish (default: all)"
    )
    parser.add_argument(
        "--database", default=None, help="database of `wasync_delivery` (default: SQLite)"
    )
    parser.add_argument("--consume", nargs=3, metavar=("KIND", "NAME", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        kind, name, n = args.consume
        print(json.dumps(asyncio.run(consume(kind, name, int(n)))), flush=True)
        return
    kinds = [k.strip() for k in args.brokers.split(",") if k.strip()]
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    result = asyncio.run(
        bench(kinds, args.events, args.batch, args.rounds, args.database, variants)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
