"""API latency benchmark: the chat list and a message page, p50/p99 over loopback.

The mirror is built once with wasync's own ingestion (the initial sync of a simulator
session, every message of every chat: at the "large" scale 1,000,000 messages in 5,000
chats) and cached under the temp directory, keyed by scale, seed and schema revision.
A real uvicorn server (a separate process) serves it on 127.0.0.1; a concurrent
client sends a fixed number of requests per endpoint:

- chat list: `GET /api/sessions/bench/chats?limit=50`, at random depths (keyset cursors);
- message page: `GET .../chats/{jid}/messages?limit=50`, first or second page of a
  random chat;
- baseline, measured in the same run against the same server: `GET /health` (the
  floor of HTTP + framework + client on this machine), and the same two reads done
  in-process without HTTP (`sql_*`).

Prints one JSON object; the target is p99 under 50 ms for both endpoints.

    python bench/api.py                         # large: 1M messages, 5,000 chats
    python bench/api.py --scale medium          # 200k messages, 1,200 chats
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

KEY = "bench-api-key-0123456789"
SESSION = "bench"


def schema_version() -> str:
    """A hash of the schema and its migrations: a cached mirror is rebuilt when they change."""
    from wasync.store import migrate, schema

    digest = hashlib.sha256(Path(schema.__file__).read_bytes())
    for path in sorted((migrate.MIGRATIONS_DIR / "versions").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# Building (and caching) the mirror.


async def ingest(path: Path, scale: str, seed: int) -> dict[str, Any]:
    from wasync.config import Settings
    from wasync.engines.simulator import Network, SimulatorEngine
    from wasync.sessions.host import hosted_session
    from wasync.store.db import Database

    db = Database(f"sqlite:///{path}")
    db.migrate()
    engine = SimulatorEngine(Network.from_scale(scale, seed))
    started = time.perf_counter()
    async with hosted_session(
        Settings(data_dir=path.parent, database_url=db.url),
        db,
        SESSION,
        engine,
        engine_name="simulator",
        command="bench",
    ) as handle:
        report = await handle.sync.initial_sync(10**7)
        await handle.sync.flush()
    return {
        "messages": report.messages,
        "chats": report.chats,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def mirror(scale: str, seed: int, cache: Path) -> tuple[Path, dict[str, Any]]:
    folder = cache / f"api-{scale}-{seed}-{schema_version()}"
    done = folder / "built.json"
    if done.exists():
        return folder / "wasync.db", {**json.loads(done.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    info = asyncio.run(ingest(folder / "wasync.db", scale, seed))
    done.write_text(json.dumps(info))
    return folder / "wasync.db", {**info, "cached": False}


# The server process.


def serve(db_path: str, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from wasync.api.app import asgi_app, create_app
    from wasync.config import Settings
    from wasync.runtime import Runtime

    data = Path(tempfile.mkdtemp(prefix="wasync-bench-api-"))
    settings = Settings(data_dir=data, database_url=f"sqlite:///{db_path}")
    runtime = Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    app = create_app(runtime, api_key=KEY, lifespan=lifespan)
    uvicorn.run(asgi_app(app), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The client.


class Http:
    """A thin aiohttp client (lighter than httpx: the client shares the CPUs it measures)."""

    def __init__(self, base: str, concurrency: int) -> None:
        self.base = base
        connector = aiohttp.TCPConnector(limit=concurrency)
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"X-Api-Key": KEY}, trust_env=False
        )

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as r:
            body = await r.read()
            return r.status, body

    async def json(self, path: str) -> Any:
        status, body = await self.get(path)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status} {body[:200]!r}")
        return json.loads(body)

    async def close(self) -> None:
        await self.session.close()


async def wait_ready(http: Http) -> None:
    for _ in range(600):
        try:
            if (await http.get("/health"))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the server did not start")


async def targets(http: Http, rng: random.Random) -> dict[str, list[str]]:
    """Request paths: chat list pages at every depth, first and second message pages."""
    base = f"/api/sessions/{SESSION}"
    chat_pages = [f"{base}/chats?limit=50"]
    jids: list[str] = []
    cursor = None
    while True:
        url = f"{base}/chats?limit=500" + (f"&cursor={cursor}" if cursor else "")
        page = await http.json(url)
        jids.extend(c["jid"] for c in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    cursor = None
    while True:
        url = f"{base}/chats?limit=50" + (f"&cursor={cursor}" if cursor else "")
        cursor = (await http.json(url))["nextCursor"]
        if cursor is None:
            break
        chat_pages.append(f"{base}/chats?limit=50&cursor={cursor}")
    message_pages = []
    for jid in rng.sample(jids, min(300, len(jids))):
        first = f"{base}/chats/{jid}/messages?limit=50"
        message_pages.append(first)
        nxt = (await http.json(first))["nextCursor"]
        if nxt:
            message_pages.append(f"{first}&before={nxt}")
    return {"chat_list": chat_pages, "message_page": message_pages, "health": ["/health"]}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used: a figure other load cannot inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    http: Http,
    paths: list[str],
    n: int,
    concurrency: int,
    rng: random.Random,
    server_pid: int,
) -> dict[str, float]:
    plan = [rng.choice(paths) for _ in range(n)]
    latencies: list[float] = []

    async def worker(mine: list[str]) -> None:
        for path in mine:
            t = time.perf_counter()
            status, body = await http.get(path)
            latencies.append(time.perf_counter() - t)
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status} {body[:200]!r}")

    started, cpu = time.perf_counter(), cpu_seconds(server_pid)
    await asyncio.gather(*(worker(plan[i::concurrency]) for i in range(concurrency)))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server_pid) - cpu
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "requests_per_s": round(n / wall),
        "server_cpu_ms_per_request": round(cpu / n * 1000, 2),
    }


def sql_only(db_path: Path, paths: dict[str, list[str]], rng: random.Random) -> dict[str, float]:
    """The same reads in-process, without HTTP: what the database itself costs."""
    from urllib.parse import parse_qs, unquote, urlsplit

    from wasync.api import reads
    from wasync.store import queries
    from wasync.store.db import Database
    from wasync.store.sessions import get_session

    db = Database(f"sqlite:///{db_path}")
    out = {}
    try:
        with db.read() as conn:
            sid = get_session(conn, SESSION).id
        for name in ("chat_list", "message_page"):
            samples = []
            for path in [rng.choice(paths[name]) for _ in range(500)]:
                parts = urlsplit(path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                t = time.perf_counter()
                with db.read() as conn:
                    if name == "chat_list":
                        page = queries.list_chats(conn, sid, limit=50, cursor=query.get("cursor"))
                        reads.contact_names(conn, sid, [r["jid"] for r in page.items])
                        reads.last_messages(conn, sid, [r["jid"] for r in page.items])
                    else:
                        jid = unquote(parts.path.split("/chats/")[1].split("/")[0])
                        page = queries.list_messages(
                            conn, sid, jid, limit=50, before=query.get("before")
                        )
                        ids = [r["message_id"] for r in page.items]
                        reads.reactions_of(conn, sid, jid, ids)
                samples.append(time.perf_counter() - t)
            out[f"sql_{name}_p50_ms"] = round(statistics.median(samples) * 1000, 2)
    finally:
        db.close()
    return out


async def client(port: int, n: int, concurrency: int, seed: int, server_pid: int) -> dict[str, Any]:
    rng = random.Random(seed)
    http = Http(f"http://127.0.0.1:{port}", concurrency)
    try:
        await wait_ready(http)
        paths = await targets(http, rng)
        results: dict[str, Any] = {}
        for name in ("health", "chat_list", "message_page"):
            await measure(http, paths[name], min(200, n), concurrency, rng, server_pid)  # warm-up
            results[name] = await measure(http, paths[name], n, concurrency, rng, server_pid)
        results["paths"] = paths
        return results
    finally:
        await http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="large", help="tiny, small, medium or large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "wasync-bench")
    parser.add_argument("--serve", nargs=2, metavar=("DB", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    db_path, built = mirror(args.scale, args.seed, args.cache)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(db_path), str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        measured = asyncio.run(client(port, args.requests, args.concurrency, args.seed, server.pid))
    finally:
        server.terminate()
        server.wait(30)
    paths = measured.pop("paths")
    result = {
        "scale": args.scale,
        # Other processes share these CPUs: latency is only comparable at a similar load.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        **built,
        "concurrency": args.concurrency,
        "requests_per_endpoint": args.requests,
        "chat_list": measured["chat_list"],
        "message_page": measured["message_page"],
        "baseline_health": measured["health"],
        **sql_only(db_path, paths, random.Random(args.seed)),
        "target_p99_ms": 50,
        "meets_target": max(measured["chat_list"]["p99_ms"], measured["message_page"]["p99_ms"])
        < 50,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
