"""Ingestion with webhooks installed: what the delivery hook costs the hot path.

Feeds the same simulator messages through wasync's writer three times, each
into a fresh SQLite mirror, in the same run:

- `plain`: no hooks (the baseline, as in bench/ingest.py);
- `installed`: the delivery hook installed, no endpoint configured (what every
  deployment pays: the answer must be "nothing");
- `subscribed`: a webhook subscribed to `message` (each new message becomes a
  delivery job in the same transaction);
- `broker`: a broker endpoint (NATS) subscribed to `message` instead (each new
  message is appended to the endpoint's log in the same transaction).

Then the same messages once more into the `subscribed` mirror (a replay): nothing is
enqueued, and the cost of finding that out is `replay_seconds`. Ratios are plain
seconds / variant seconds. Nothing is sent: no delivery worker runs. Prints one JSON object.

    python bench/webhooks.py --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from ingest import network_for  # bench/ingest.py's network for n messages
from wasync.config import Settings
from wasync.delivery import endpoints as E
from wasync.delivery.worker import Delivery
from wasync.domain.events import MessageReceived
from wasync.jobs import queries as queue
from wasync.store.db import Database
from wasync.store.schema import stream_events
from wasync.store.sessions import ensure_session
from wasync.sync.writer import GroupWriter


async def ingest(
    db: Database, sid: int, events: list[MessageReceived], hooks: list[object]
) -> float:
    group = GroupWriter(db, max_batch=5000, max_delay=0.1, hooks=hooks)  # type: ignore[arg-type]
    writer = group.attach(sid)
    t = time.perf_counter()
    for event in events:
        await writer.put(event)
    await writer.flush()
    elapsed = time.perf_counter() - t
    await group.close()
    return elapsed


def mirror(tmp: Path, name: str, subscribe: str | None) -> tuple[Database, int, Delivery]:
    """A fresh mirror; `subscribe`: the URL of an endpoint wanting messages, if any."""
    db = Database(f"sqlite:///{tmp / name}")
    db.migrate()
    delivery = Delivery(Settings(data_dir=tmp), db)
    with db.write() as conn:
        sid = ensure_session(conn, "bench", "simulator")
        if subscribe:
            E.add(conn, E.check_shape("bench", subscribe, ["message"]))
    return db, sid, delivery


def logged_in(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(stream_events)).scalar_one())


def jobs_in(db: Database) -> int:
    with db.read() as conn:
        return sum(queue.counts(conn, kind="webhook")["webhook"].values())


async def run(n: int, seed: int) -> dict[str, object]:
    net = network_for(n, seed)
    events = [MessageReceived(m) for m in net.iter_all_messages()]
    out: dict[str, object] = {"messages": len(events)}
    with tempfile.TemporaryDirectory(prefix="wasync-bench-") as name:
        tmp = Path(name)
        db, sid, _ = mirror(tmp, "plain.db", None)
        plain = await ingest(db, sid, events, [])
        db.close()
        db, sid, delivery = mirror(tmp, "installed.db", None)
        installed = await ingest(db, sid, events, [delivery.recorder])
        db.close()
        db, sid, delivery = mirror(tmp, "broker.db", "nats://127.0.0.1:4222/bench")
        broker = await ingest(db, sid, events, [delivery.recorder])
        logged = logged_in(db)
        db.close()
        db, sid, delivery = mirror(tmp, "subscribed.db", "https://hooks.example.com/in")
        subscribed = await ingest(db, sid, events, [delivery.recorder])
        enqueued = jobs_in(db)
        replay = await ingest(db, sid, events, [delivery.recorder])
        after_replay = jobs_in(db)
        db.close()
    out |= {
        "plain_seconds": round(plain, 3),
        "installed_seconds": round(installed, 3),
        "subscribed_seconds": round(subscribed, 3),
        "broker_seconds": round(broker, 3),
        "replay_seconds": round(replay, 3),
        "ratio_installed_vs_plain": round(plain / installed, 3),
        "ratio_subscribed_vs_plain": round(plain / subscribed, 3),
        "ratio_broker_vs_plain": round(plain / broker, 3),
        "events_logged_for_broker": logged,
        "jobs_enqueued": enqueued,
        "jobs_enqueued_by_replay": after_replay - enqueued,
        "subscribed_msgs_per_s": round(len(events) / subscribed),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    json.dump(asyncio.run(run(args.messages, args.seed)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
