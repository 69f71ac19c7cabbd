"""Avatar worker benchmark: does it use the configured request rate fully, and no more?

A simulated session with N contacts and groups, a SQLite mirror, and the real avatar
service (rate limiter, durable jobs, HTTP downloads from the simulator's media
server, Pillow checks, atomic writes, row updates). The answers are a fixed mix:
by default 10% 404 (no picture), 10% 401 (hidden), 10% unchanged (already stored,
so no download) and 70% new pictures to download and store.

The baseline is the configured rate itself (requests per second). Every picture
request the simulated WhatsApp receives is timestamped; the achieved rate is
(requests - 1) / (last - first), so `ratio` = achieved / configured should be close
to 1 and never meaningfully above it. Also reported: the shortest gap seen against
the configured minimum, and the densest one-second window against the limiter's
documented bound. Prints one JSON object.

    python bench/avatars.py --rate 20 --jids 400
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wasync.avatars import AvatarConfig, Pace, avatar_service, install
from wasync.avatars.enqueue import KIND, enqueue_session
from wasync.avatars.records import save_avatar
from wasync.config import Settings
from wasync.engines.simulator import Network, NetworkConfig, PictureState, SimulatorEngine
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store.db import Database

SESSION = "bench"


def network_for(jids: int, seed: int) -> Network:
    groups = max(1, jids // 6)
    contacts = jids - groups
    return Network(
        NetworkConfig(
            seed=seed,
            contacts=contacts,
            groups=groups,
            individual_chats=min(contacts, jids // 2),
            messages=jids,
        )
    )


def assign_answers(network: Network, jids: list[str], share: float) -> dict[str, list[str]]:
    """Force the mix: share/3 each of 404, 401 and unchanged; the rest new pictures."""
    each = round(len(jids) * share / 3)
    mix = {
        "not_set": jids[:each],
        "forbidden": jids[each : 2 * each],
        "unchanged": jids[2 * each : 3 * each],
        "new": jids[3 * each :],
    }
    for jid in mix["not_set"]:
        network.set_picture_state(jid, PictureState.NOT_SET)
    for jid in mix["forbidden"]:
        network.set_picture_state(jid, PictureState.FORBIDDEN)
    for jid in mix["unchanged"] + mix["new"]:
        network.set_picture_state(jid, PictureState.SET)
    return mix


def densest_second(times: list[float]) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    pace = Pace.every(1.0 / args.rate)
    network = network_for(args.jids, args.seed)
    jids = sorted({c.jid for c in network.contacts()} | set(network.chat_jids()))
    mix = assign_answers(network, jids, args.mix)
    engine = SimulatorEngine(network)
    db = Database(f"sqlite:///{data_dir / 'wasync.db'}")
    runtime = Runtime(Settings(data_dir=data_dir), db=db)
    install(runtime, AvatarConfig(pace=pace, poll_interval=0.05, refresh_every=3_600))
    await runtime.start()
    try:
        handle = await runtime.add_session(SESSION, engine, engine_name="simulator")
        service = avatar_service(runtime)
        worker = service.workers[SESSION]
        worker.limiter.pause(3_600)  # hold the worker while the directory is stored
        await runtime.sync_chats(SESSION, 0)
        storage = service.storage
        assert storage is not None
        with db.write() as conn:  # what a previous run stored: answered "unchanged"
            for jid in mix["unchanged"]:
                picture_id = network.picture_id(jid)
                assert picture_id is not None
                storage.write(SESSION, jid, network.picture_bytes(jid, picture_id))
                url = storage.url_for(SESSION, jid)
                save_avatar(conn, handle.session_id, jid, picture=url, picture_id=picture_id, now=1)
            enqueue_session(conn, handle.session_id, max_attempts=5)
        started = time.perf_counter()
        worker.limiter.resume()
        runtime.jobs.wake()
        while True:
            with db.read() as conn:
                counts = queue.counts(conn, kind=KIND, session_id=handle.session_id)[KIND]
            if counts["queued"] + counts["running"] == 0:
                break
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        outcomes = dict(worker.fetcher.outcomes)
        downloads = engine.media_server.downloads.completed.total()
    finally:
        await runtime.stop()

    times = engine.picture_requests
    gaps = [b - a for a, b in itertools.pairwise(times)]
    achieved = (len(times) - 1) / (times[-1] - times[0])
    bound = math.floor(1.0 / pace.interval + 1 + (pace.max_gap - pace.min_gap) / pace.interval)
    return {
        "benchmark": "avatars",
        "jids": len(jids),
        "mix": {key: len(value) for key, value in mix.items()},
        "configured_rate": round(pace.rate, 4),
        "achieved_rate": round(achieved, 4),
        "ratio": round(achieved / pace.rate, 4),
        "requests": len(times),
        "downloads": downloads,
        "outcomes": outcomes,
        "failed_jobs": counts["failed"],
        "min_gap_s": round(min(gaps), 5),
        "configured_min_gap_s": round(pace.min_gap, 5),
        "max_gap_s": round(max(gaps), 5),
        "densest_second": densest_second(times),
        "densest_second_bound": bound,
        "seconds": round(seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="configured requests/second")
    parser.add_argument("--jids", type=int, default=400, help="contacts and groups to check")
    parser.add_argument("--mix", type=float, default=0.3, help="share of 404/401/unchanged")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.rate <= 0 or args.jids < 10 or not 0 <= args.mix <= 1:
        sys.exit("need --rate > 0, --jids >= 10 and 0 <= --mix <= 1")
    with tempfile.TemporaryDirectory(prefix="wasync-bench-avatars-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
