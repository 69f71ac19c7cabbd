"""Ingestion benchmark: simulator events -> committed rows, against raw sqlite3.

Generates M messages on the simulator and feeds them, as MessageReceived events,
through wasync's real ingestion path (the process's writer: group commit, idempotent upserts,
sync state and chat activity) into a fresh SQLite mirror. In the same run, the
baseline inserts identical rows into an identical schema (same migrations, same
pragmas) with plain `sqlite3.executemany` in batches of 1,000, one commit each.

What is timed is ingestion: from the moment an event is handed to wasync until its
rows are committed. Events are produced by the simulator in chunks of 10,000 outside
the timer (the engine's own cost, reported separately as `engine_seconds`), and each
timed chunk ends only when the writer has committed all of it, so no work spills
into untimed time. The baseline's rows are likewise built outside its timer.
`ratio_vs_raw` = raw seconds / wasync seconds. Prints one JSON object.

    python bench/ingest.py --messages 200000
    python bench/ingest.py --messages 200000 --scaling 1000000   # also the 5x size (3 runs)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from wasync.domain.events import MessageReceived
from wasync.engines.simulator import Network, NetworkConfig
from wasync.store.db import SQLITE_WRITER_CACHE_KIB, Database
from wasync.store.rows import MESSAGE_COLUMNS, message_values
from wasync.store.schema import messages as messages_table
from wasync.store.sessions import ensure_session
from wasync.sync.writer import GroupWriter

RAW_BATCH = 1000


def network_for(n_messages: int, seed: int) -> Network:
    chats = max(10, min(5000, n_messages // 200))
    return Network(
        NetworkConfig(
            seed=seed,
            contacts=chats,
            groups=max(1, chats // 5),
            individual_chats=chats - max(1, chats // 5),
            messages=n_messages,
        )
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def event_chunks(net: Network, size: int = 10_000) -> Iterator[list[MessageReceived]]:
    chunk: list[MessageReceived] = []
    for m in net.iter_all_messages():
        chunk.append(MessageReceived(m))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def run_wasync(net: Network, db_path: Path, batch: int) -> tuple[float, float, int]:
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    with db.write() as conn:
        sid = ensure_session(conn, "bench", "simulator")
    group = GroupWriter(db, max_batch=batch, max_delay=0.1)
    writer = group.attach(sid)
    elapsed = engine_seconds = 0.0
    count = 0
    chunks = event_chunks(net)
    while True:
        t = time.perf_counter()
        chunk = next(chunks, None)
        engine_seconds += time.perf_counter() - t
        if chunk is None:
            break
        t = time.perf_counter()
        for event in chunk:
            await writer.put(event)
        await writer.flush()
        elapsed += time.perf_counter() - t
        count += len(chunk)
    await group.close()
    with db.read() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    db.close()
    if stored != count:
        raise SystemExit(f"lost rows: generated {count}, stored {stored}")
    return elapsed, engine_seconds, count


def raw_rows(net: Network, sid: int) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for m in net.iter_all_messages():
        chunk.append(message_values(sid, m))
        if len(chunk) == RAW_BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_raw(net: Network, db_path: Path) -> float:
    db = Database(f"sqlite:///{db_path}")  # same migrations -> identical schema
    db.migrate()
    with db.write() as conn:
        sid = ensure_session(conn, "bench", "simulator")
    db.close()
    cols = MESSAGE_COLUMNS
    sql = f"INSERT INTO messages ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB}")  # as wasync's writer
    elapsed = 0.0
    assert set(cols) == {c.name for c in messages_table.c} - {"id"}
    for chunk in raw_rows(net, sid):
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, chunk)
        conn.execute("COMMIT")
        elapsed += time.perf_counter() - t
    conn.close()
    return elapsed


def measure(n_messages: int, seed: int, batch: int, repeat: int = 1) -> dict[str, float | int]:
    """Run both sides `repeat` times, alternating, and report the medians.

    Alternating keeps a burst of load on the machine from favouring one side.
    """
    net = network_for(n_messages, seed)
    raw_runs: list[float] = []
    runs: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="wasync-bench-") as tmp:
        for i in range(repeat):
            raw_runs.append(run_raw(net, Path(tmp) / f"raw{i}.db"))
            runs.append(asyncio.run(run_wasync(net, Path(tmp) / f"wasync{i}.db", batch)))
    raw_seconds = statistics.median(raw_runs)
    seconds = statistics.median(r[0] for r in runs)
    engine_seconds = statistics.median(r[1] for r in runs)
    count = runs[0][2]
    return {
        "messages": count,
        "chats": len(net.chat_jids()),
        "repeat": repeat,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(count / seconds),
        "raw_seconds": round(raw_seconds, 3),
        "raw_msgs_per_s": round(count / raw_seconds),
        "ratio_vs_raw": round(raw_seconds / seconds, 3),
        "engine_seconds": round(engine_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=5000, help="wasync group-commit size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; medians are reported")
    parser.add_argument(
        "--scaling", type=int, default=0, help="also run this larger size and report the ratio"
    )
    parser.add_argument(
        "--scaling-repeat",
        type=int,
        default=3,
        help="runs per side of the larger size (medians: one run is too noisy to compare)",
    )
    args = parser.parse_args()
    result: dict[str, object] = dict(measure(args.messages, args.seed, args.batch, args.repeat))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if args.scaling:
        big = measure(args.scaling, args.seed, args.batch, args.scaling_repeat)
        result["scaling"] = {
            **big,
            "time_ratio": round(float(big["seconds"]) / float(result["seconds"]), 2),  # type: ignore[arg-type]
            "size_ratio": round(args.scaling / args.messages, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
