"""Message search benchmark: p50/p99 of `search_messages` on SQLite and PostgreSQL.

Builds a mirror of N simulator messages (default 1,000,000 in 5,000 chats) through
wasync's write path (`commit_batch`, 10,000 messages a transaction), brings the
search index up to date (SQLite: the indexer, timed; PostgreSQL: the GIN index is
kept by the inserts themselves), then times, in-process, the query a search request
runs (the first page, 20 hits, and the page after it):

- common: the most frequent word of the mirror, in the whole session;
- common_in_chat: the same word within the busiest chat;
- two_words: the two most frequent words together;
- uncommon: a word in 1 message in 100; rare: in 1 in 10,000 (both added to the
  simulator's texts, whose vocabulary is small);
- absent: a word no message holds.

In the same run, the baseline is what a search without an index does:
`text LIKE '%word%'` newest first (fewer repetitions: it is slow). Prints one JSON
object; the target is p99 under 50 ms for a common word.

    python bench/search.py                          # 1M messages, SQLite and PostgreSQL
    python bench/search.py --messages 200000 --postgres ''   # SQLite only

PostgreSQL: --postgres URL, or WASYNC_TEST_POSTGRES_URL; the mirror is built in a
schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text

from ingest import network_for  # bench/ingest.py's network for n messages
from wasync.domain.batch import Batch
from wasync.domain.events import MessageReceived
from wasync.engines.simulator import Network
from wasync.search import catch_up
from wasync.store import search
from wasync.store.db import Database, normalize_url
from wasync.store.sessions import ensure_session
from wasync.sync.commit import commit_batch

CHUNK = 10_000
RARE, UNCOMMON = "nebula", "comet"


def build(db: Database, net: Network) -> tuple[int, float]:
    with db.write() as conn:
        sid = ensure_session(conn, "bench", "simulator")
    started = time.perf_counter()
    batch = Batch()
    for i, m in enumerate(net.iter_all_messages()):
        # The simulator's vocabulary is small: two marker words give a rare (1 in
        # 10,000) and an uncommon (1 in 100) word at any size.
        if m.text is not None and i % 100 == 0:
            m = replace(m, text=f"{m.text} {RARE if i % 10_000 == 0 else UNCOMMON}")
        batch.add(MessageReceived(m))
        if len(batch.messages) == CHUNK:
            commit_batch(db, sid, batch)
            batch = Batch()
    if batch.messages:
        commit_batch(db, sid, batch)
    return sid, time.perf_counter() - started


def words_of(db: Database, sid: int, rng: random.Random) -> dict[str, Any]:
    """The query words, chosen from a sample of the mirror's texts."""
    with db.read() as conn:
        rows = conn.execute(
            text("SELECT chat_jid, text FROM messages WHERE session_id = :sid"), {"sid": sid}
        ).all()
        sample = rng.sample(rows, min(len(rows), 100_000))
    counts = Counter(w for r in sample for w in search.message_words(r.text) if len(w) > 2)
    ranked = [w for w, _ in counts.most_common()]
    chats = Counter(r.chat_jid for r in rows)
    return {
        "common": ranked[0],
        "second": ranked[1],
        "busiest_chat": chats.most_common(1)[0][0],
        "common_share": round(counts[ranked[0]] / len(sample), 3),
    }


def timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    fn()  # warm
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "n": n,
    }


def queries(db: Database, sid: int, w: dict[str, Any], n: int) -> dict[str, Any]:
    cases: dict[str, tuple[str, str | None]] = {
        "common": (w["common"], None),
        "common_in_chat": (w["common"], w["busiest_chat"]),
        "two_words": (f"{w['common']} {w['second']}", None),
        "uncommon": (UNCOMMON, None),
        "rare": (RARE, None),
        "absent": ("zqxjkvw", None),
    }
    out: dict[str, Any] = {}
    for name, (query, chat) in cases.items():

        def first(query: str = query, chat: str | None = chat) -> search.Hits:
            with db.read() as conn:
                return search.search_messages(conn, sid, query, chat_jid=chat, limit=20)

        hits = first()
        out[name] = {"query": query, "hits_on_page": len(hits.rows), **timed(first, n)}
        if hits.next_cursor:

            def second(
                query: str = query, chat: str | None = chat, cursor: str = hits.next_cursor
            ) -> object:
                with db.read() as conn:
                    return search.search_messages(
                        conn, sid, query, chat_jid=chat, before=cursor, limit=20
                    )

            out[name]["second_page"] = timed(second, n)
    return out


def like_baseline(db: Database, sid: int, w: dict[str, Any], n: int) -> dict[str, Any]:
    out = {}
    for name, word in (("common", w["common"]), ("rare", RARE)):
        sql = text(
            "SELECT id FROM messages WHERE session_id = :sid AND text LIKE :pattern "
            "ORDER BY timestamp DESC, id DESC LIMIT 20"
        )

        def run(word: str = word, sql: Any = sql) -> object:
            with db.read() as conn:
                return conn.execute(sql, {"sid": sid, "pattern": f"%{word}%"}).all()

        out[name] = timed(run, n)
    return out


def bench(db: Database, net: Network, n: int, like_n: int) -> dict[str, Any]:
    db.migrate()
    sid, ingest = build(db, net)
    result: dict[str, Any] = {"ingest_seconds": round(ingest, 1)}
    if db.is_sqlite:
        t = time.perf_counter()
        indexed = catch_up(db)
        result["index_seconds"] = round(time.perf_counter() - t, 1)
        result["indexed_messages"] = indexed
    else:
        # Statistics as autovacuum would have them on a mirror this size.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE messages")
    w = words_of(db, sid, random.Random(7))
    result["words"] = w
    result["search"] = queries(db, sid, w, n)
    result["like_baseline"] = like_baseline(db, sid, w, like_n)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=300, help="timed searches per case")
    parser.add_argument("--like-n", type=int, default=10, help="timed LIKE scans per case")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("WASYNC_TEST_POSTGRES_URL", ""),
        help="PostgreSQL URL ('' skips PostgreSQL)",
    )
    args = parser.parse_args()
    t = time.perf_counter()
    net = network_for(args.messages, args.seed)
    out: dict[str, Any] = {
        "messages": args.messages,
        "chats": len(net.chat_jids()),
        "network_seconds": round(time.perf_counter() - t, 1),
    }
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'search.db'}")
        try:
            out["sqlite"] = bench(db, net, args.n, args.like_n)
        finally:
            db.close()
        print(json.dumps(out), file=sys.stderr)  # progress: SQLite is done
    if args.postgres:
        base = normalize_url(args.postgres)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in base else "?"
        db = Database(f"{base}{sep}options={quote(f'-csearch_path={schema}')}")
        try:
            out["postgresql"] = bench(db, net, args.n, args.like_n)
        finally:
            db.close()
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
