"""Cluster benchmark: three `wasync serve` nodes on one PostgreSQL database.

Measures, with N simulator sessions (default 30) spread over the nodes:
- `takeover_after_sigkill_s`: SIGKILL one node; seconds until every session runs
  again (the lease time bounds it: the dead node says nothing);
- `takeover_after_sigterm_s`: SIGTERM another node; seconds until its sessions run on
  the last one (a drain: sessions are handed over at once);
- `notify_events_per_s`: live events relayed through LISTEN/NOTIFY from one node to
  another, measured in this process with two relays (cluster/events.py) on the same
  database: events published on one bus, counted on the other, against
  `notify_raw_per_s`, bare `pg_notify` calls of the same payload sizes in one
  connection (the baseline of the same run);
- `live_events_per_s_seen_elsewhere`: events of the sessions' live traffic that a
  WebSocket client of a node sees, for sessions running on the other nodes.

Needs a PostgreSQL server (`--database`, default the local `test` database); it works
in a fresh schema and drops it. Prints one JSON object.

    python bench/cluster.py --sessions 30 --lease 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

KEY = "bench-cluster-key-0123456789"
LIVE = {"message", "message.edit", "message.delete", "reaction"}  # live traffic's events
WASYNC = str(Path(sys.executable).parent / "wasync")


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def start_node(
    url: str, name: str, root: Path, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    log = (root / f"{name}.log").open("wb")
    return subprocess.Popen(
        [WASYNC, "serve", "--port", str(port), "--data-dir", str(data), "--node-name", name],
        env={**os.environ, **env, "WASYNC_DATABASE_URL": url, "WASYNC_API_KEY": KEY},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def view(port: int) -> dict[str, list[str]]:
    found = httpx.get(
        f"http://127.0.0.1:{port}/api/cluster", headers={"X-Api-Key": KEY}, timeout=10
    ).json()
    return {n["id"]: n["sessions"] for n in found["nodes"]}


def wait(cond: Any, within: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if cond():
                return time.monotonic() - started
        time.sleep(step)
    raise SystemExit(f"not within {within} s")


async def notify_throughput(url: str, events: int) -> dict[str, float]:
    """Two relays on one database: publish on one bus, count on the other."""
    import psycopg

    from wasync.bus import BusEvent, EventBus
    from wasync.cluster.events import ClusterBus, pack
    from wasync.cluster.notify import Notifier, libpq_url
    from wasync.store.db import Database

    db = Database(url)
    db.migrate()
    sent, got = EventBus(), EventBus()
    a, b = Notifier(db.url), Notifier(db.url)
    relay_a = ClusterBus("bench-a", sent, db, a)
    relay_b = ClusterBus("bench-b", got, db, b)
    await a.start()
    await b.start()
    await relay_a.start()
    await relay_b.start()
    sub = got.subscribe(maxsize=events + 10)
    batch = [
        BusEvent(f"s{i % 30}", "message", {"messageId": f"M{i}", "text": "x" * 200})
        for i in range(events)
    ]
    started = time.perf_counter()
    for event in batch:
        sent.publish(event)
    received = 0
    while received < events:
        item = await asyncio.wait_for(sub.get(), 60)
        if item is not None:
            received += 1
    relay_seconds = time.perf_counter() - started
    for relay in (relay_a, relay_b):
        await relay.stop()
    for n in (a, b):
        await n.stop()
    # Baseline: the same payloads, bare pg_notify in a pipeline on one connection.
    payloads, _ = pack("raw", batch)
    async with await psycopg.AsyncConnection.connect(libpq_url(db.url), autocommit=True) as conn:
        started = time.perf_counter()
        async with conn.pipeline():
            for p in payloads:
                await conn.execute("SELECT pg_notify(%s, %s)", ("bench_raw", p))
        raw_seconds = time.perf_counter() - started
    db.close()
    return {
        "notify_events_per_s": round(events / relay_seconds),
        "notify_raw_per_s": round(events / raw_seconds),
        "notifications": len(payloads),
    }


async def seen_elsewhere(port: int, sessions_elsewhere: set[str], seconds: float) -> float:
    import websockets

    count = 0
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws", additional_headers={"X-Api-Key": KEY}
    ) as ws:
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 1))
            except TimeoutError:
                continue
            if frame.get("event") in LIVE and frame.get("session") in sessions_elsewhere:
                count += 1
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=2.0, help="live events/s per session")
    parser.add_argument("--events", type=int, default=50_000, help="events through NOTIFY")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.database)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = schema_url(args.database, schema)
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    result: dict[str, Any] = {"sessions": args.sessions, "nodes": 3, "lease_s": args.lease}
    try:
        from wasync.store.db import Database
        from wasync.store.sessions import ensure_session

        db = Database(url)
        db.migrate()
        with db.write() as conn:
            for i in range(args.sessions):
                ensure_session(conn, f"s{i:03d}", "simulator")
        db.close()
        env = {
            "WASYNC_SESSION_ENGINE": "simulator",
            "WASYNC_LEASE_SECONDS": str(args.lease),
            "WASYNC_SIMULATOR_LIVE_RATE": str(args.rate),
            "WASYNC_AVATAR_WORKER": "false",
        }
        ports = {"a": 18931, "b": 18932, "c": 18933}
        with tempfile.TemporaryDirectory(prefix="wasync-bench-cluster-") as tmp:
            root = Path(tmp)
            for name, port in ports.items():
                nodes[name] = start_node(url, name, root, port, env)

            def spread() -> bool:
                v = view(ports["a"])
                return (
                    sorted(s for ss in v.values() for s in ss)
                    == [f"s{i:03d}" for i in range(args.sessions)]
                    and len(v) == 3
                    and all(v.values())
                )

            result["spread_s"] = round(wait(spread, 180), 2)
            placed = view(ports["a"])
            elsewhere = set(placed["b"]) | set(placed["c"])
            result["live_events_per_s_seen_elsewhere"] = round(
                asyncio.run(seen_elsewhere(ports["a"], elsewhere, 10.0)), 1
            )
            result["live_events_per_s_produced_elsewhere"] = round(args.rate * len(elsewhere), 1)

            nodes["c"].send_signal(signal.SIGKILL)
            nodes["c"].wait()

            def all_on(names: list[str]) -> Any:
                def check() -> bool:
                    v = view(ports[names[0]])
                    held = sorted(s for n in names for s in v.get(n, []))
                    return held == [f"s{i:03d}" for i in range(args.sessions)]

                return check

            result["takeover_after_sigkill_s"] = round(wait(all_on(["a", "b"]), args.lease + 60), 2)
            nodes["b"].send_signal(signal.SIGTERM)
            result["takeover_after_sigterm_s"] = round(wait(all_on(["a"]), 60), 2)
            nodes["b"].wait(60)
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    try:
        result.update(asyncio.run(notify_throughput(url, args.events)))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
