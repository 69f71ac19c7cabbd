"""Many sessions in one process: what a session and a live message cost.

Runs one real `wasync serve` process (SQLite in a temporary data directory unless
`--database` names another) with N simulator sessions, each producing R live
events a second, waits until every session is connected and its initial sync is
done, then measures a window of S seconds:

- `events_per_s`: live events committed (the process's `/metrics` counter);
- `cpu_percent`: the process's CPU over the window (100 = one core, read from
  /proc), and `cpu_ms_per_event`;
- `peak_rss_mb`: the process's peak resident memory (VmHWM), `threads`;
- `api_p99_ms`: a chat list (`GET /api/sessions/{s}/chats`) asked `--api-rate`
  times a second (default 10; 0: none) of a random session during the window, from
  another process (its requests count in `cpu_percent`);
- `lag_p99_ms`: event reaching the writer -> committed, from the process's
  `wasync_commit_lag_seconds` histogram over the window (the bucket bound that
  holds the 99th percentile: an upper bound).

Picture checks are off (`WASYNC_AVATAR_WORKER=false`): a thousand new sessions would
otherwise spend the window on their first picture checks, not on live traffic.
Prints one JSON object.

    python bench/sessions.py --sessions 100 --rate 1 --seconds 30
    python bench/sessions.py --sessions 100 --rate 0 --api-rate 0   # idle
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

KEY = "bench-sessions-key-0123456789"
WASYNC = str(Path(sys.executable).parent / "wasync")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def metrics(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def ingested(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("wasync_events_ingested_total"))


def lag_buckets(m: dict[str, float]) -> list[tuple[float, float]]:
    prefix = 'wasync_commit_lag_seconds_bucket{le="'
    found = [
        (float("inf") if k[len(prefix) : -2] == "+Inf" else float(k[len(prefix) : -2]), v)
        for k, v in m.items()
        if k.startswith(prefix)
    ]
    return sorted(found)


def lag_p99_ms(before: dict[str, float], after: dict[str, float]) -> float | None:
    first = dict(lag_buckets(before))
    window = [(bound, n - first.get(bound, 0.0)) for bound, n in lag_buckets(after)]
    total = window[-1][1] if window else 0
    if not total:
        return None
    for bound, n in window:
        if n >= 0.99 * total:
            return None if bound == float("inf") else round(bound * 1000, 1)
    return None


def wait(cond: Any, within: float, what: str, step: float = 0.5) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if cond():
                return time.monotonic() - started
        time.sleep(step)
    raise SystemExit(f"{what}: not within {within} s")


def probe(
    base: str, names: list[str], every: float, stop: threading.Event, out: list[float]
) -> None:
    with httpx.Client(base_url=base, headers={"X-Api-Key": KEY}, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            r = client.get(f"/api/sessions/{random.choice(names)}/chats", params={"limit": 50})
            r.raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
            stop.wait(every)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0, help="live events/s per session")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--scale", default="tiny", help="simulated account size")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after start-up")
    parser.add_argument("--database", default=None, help="default: SQLite in the data dir")
    parser.add_argument("--port", type=int, default=18961)
    parser.add_argument("--api-rate", type=float, default=10.0, help="chat lists/s; 0: none")
    args = parser.parse_args()

    from wasync.store.db import Database
    from wasync.store.sessions import ensure_session

    names = [f"s{i:04d}" for i in range(args.sessions)]
    with tempfile.TemporaryDirectory(prefix="wasync-bench-sessions-") as tmp:
        data = Path(tmp)
        url = args.database or f"sqlite:///{data / 'wasync.db'}"
        db = Database(url)
        db.migrate()
        with db.write() as conn:
            for name in names:
                ensure_session(conn, name, "simulator")
        db.close()
        env = {
            **os.environ,
            "WASYNC_API_KEY": KEY,
            "WASYNC_DATABASE_URL": url,
            "WASYNC_SESSION_ENGINE": "simulator",
            "WASYNC_SIMULATOR_SCALE": args.scale,
            "WASYNC_SIMULATOR_LIVE_RATE": str(args.rate),
            "WASYNC_AVATAR_WORKER": "false",
        }
        log = (data / "serve.log").open("wb")
        node = subprocess.Popen(
            [WASYNC, "serve", "--port", str(args.port), "--data-dir", str(data)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{args.port}"
        result: dict[str, Any] = {"sessions": args.sessions, "rate": args.rate}
        try:
            with httpx.Client(base_url=base, headers={"X-Api-Key": KEY}, timeout=30) as client:

                def connected() -> bool:
                    found = client.get("/api/sessions").json()["items"]
                    return sum(s["status"] == "connected" for s in found) == args.sessions

                def synced() -> bool:
                    m = metrics(client)
                    return not any(
                        v
                        for k, v in m.items()
                        if k.startswith("wasync_jobs{") and 'state="queued"' in k
                    )

                result["startup_s"] = round(wait(connected, 600, "sessions connected"), 1)
                wait(synced, 600, "initial sync")
                time.sleep(args.settle)
                stop, latencies = threading.Event(), []  # type: ignore[var-annotated]
                prober = threading.Thread(
                    target=probe, args=(base, names, 1 / (args.api_rate or 1), stop, latencies)
                )
                before, cpu0, t0 = metrics(client), cpu_seconds(node.pid), time.monotonic()
                if args.api_rate:
                    prober.start()
                time.sleep(args.seconds)
                after, cpu1, t1 = metrics(client), cpu_seconds(node.pid), time.monotonic()
                stop.set()
                if args.api_rate:
                    prober.join(30)
                events = ingested(after) - ingested(before)
                cpu = cpu1 - cpu0
                result.update(
                    seconds=round(t1 - t0, 1),
                    events_per_s=round(events / (t1 - t0), 1),
                    cpu_percent=round(100 * cpu / (t1 - t0), 1),
                    cpu_ms_per_event=round(1000 * cpu / events, 3) if events else None,
                    peak_rss_mb=round(status_field(node.pid, "VmHWM") / 1024, 1),
                    rss_mb=round(status_field(node.pid, "VmRSS") / 1024, 1),
                    threads=status_field(node.pid, "Threads"),
                    api_p50_ms=percentile(latencies, 0.5),
                    api_p99_ms=percentile(latencies, 0.99),
                    lag_p99_ms=lag_p99_ms(before, after),
                )
        finally:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(10)
            log.close()
            if node.returncode not in (0, -signal.SIGTERM):
                sys.stderr.write((data / "serve.log").read_text()[-3000:])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
