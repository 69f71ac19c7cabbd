"""History benchmark: "load full history" of one 100,000-message chat, against raw sqlite3.

wasync's real path runs: a `history.backfill` job claimed by the process's job runner pages
backwards through the simulator engine's `request_history`, committing each page
with its sync state and job progress in one transaction. The simulator's artificial
delays are zero; the time spent generating messages inside `request_history` is
measured and reported apart (`engine_seconds`) and excluded from `seconds`, as
bench/ingest.py excludes its event generation.

The baseline is bench/ingest.py's: identical rows into an identical schema (same
migrations, same pragmas) with plain `sqlite3.executemany` in batches of 1,000, one
commit each, rows built outside its timer. `ratio_vs_raw` = raw seconds / wasync
seconds. Prints one JSON object.

    python bench/history.py --messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from ingest import run_raw  # bench/ingest.py's baseline, the same rows and pragmas
from wasync.config import Settings
from wasync.domain.models import Message, MessageAnchor
from wasync.engines.simulator import Network, NetworkConfig, SimulatorEngine
from wasync.history import HistoryOptions, install, request_backfill
from wasync.history.kinds import BACKFILL
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store.db import Database


class TimedEngine(SimulatorEngine):
    """The simulator, with the time spent answering history requests added up."""

    engine_seconds = 0.0

    async def request_history(
        self, chat_jid: str, before: MessageAnchor | None, count: int
    ) -> list[Message]:
        started = time.perf_counter()
        try:
            return await super().request_history(chat_jid, before, count)
        finally:
            self.engine_seconds += time.perf_counter() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_wasync(net: Network, db_path: Path, page_size: int) -> tuple[float, float, int]:
    chat = net.chat_jids()[0]
    db = Database(f"sqlite:///{db_path}")
    runtime = Runtime(Settings(data_dir=db_path.parent), db=db)
    install(runtime, HistoryOptions(page_size=page_size), kinds=(BACKFILL,))
    await runtime.start()
    engine = TimedEngine(net)
    handle = await runtime.add_session("bench", engine, engine_name="simulator")
    sid = handle.session_id
    started = time.perf_counter()
    with db.write() as conn:
        job_id = request_backfill(conn, sid, chat, full=True).job_id
    assert job_id is not None
    while True:
        with db.read() as conn:
            job = queue.get_job(conn, job_id)
        assert job is not None
        if job.state in ("done", "failed"):
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    if job.state != "done":
        raise SystemExit(f"the backfill failed: {job.last_error}")
    with db.read() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    await runtime.stop()
    if stored != net.message_count(chat):
        raise SystemExit(f"lost rows: the chat has {net.message_count(chat)}, stored {stored}")
    return elapsed - engine.engine_seconds, engine.engine_seconds, int(stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=HistoryOptions().page_size)
    args = parser.parse_args()
    net = Network(
        NetworkConfig(
            seed=args.seed, contacts=2, groups=0, individual_chats=1, messages=args.messages
        )
    )
    with tempfile.TemporaryDirectory(prefix="wasync-bench-") as tmp:
        seconds, engine_seconds, count = asyncio.run(
            run_wasync(net, Path(tmp) / "wasync.db", args.page_size)
        )
        rss = peak_rss_mb()  # wasync's peak, before the baseline runs
        raw_seconds = run_raw(net, Path(tmp) / "raw.db")
    result = {
        "messages": count,
        "page_size": args.page_size,
        "pages": -(-count // args.page_size),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(count / seconds),
        "raw_seconds": round(raw_seconds, 3),
        "raw_msgs_per_s": round(count / raw_seconds),
        "ratio_vs_raw": round(raw_seconds / seconds, 3),
        "engine_seconds": round(engine_seconds, 3),
        "peak_rss_mb": round(rss, 1),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
