"""Shutdown benchmark: seconds from SIGTERM to exit of `wasync serve` with live clients.

Each case starts a fresh server (SQLite in a temporary directory, no sessions),
connects its clients, sends SIGTERM and times the exit. The baseline, measured in the
same run, is a server with no client at all; the target is under 5 s with clients
(Docker sends SIGKILL 10 s after SIGTERM).

    python bench/shutdown.py            # prints one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

KEY = "bench-shutdown-key-0123456789"
WASYNC = str(Path(sys.executable).parent / "wasync")


async def _start(data_dir: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per case, before timing
        [WASYNC, "serve", "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WASYNC_API_KEY": KEY, "WASYNC_SESSION_ENGINE": "simulator"},
    )
    assert proc.stderr is not None
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(60):
        while True:
            line = await loop.run_in_executor(None, proc.stderr.readline)
            if not line:
                raise RuntimeError("the server exited before it listened")
            if m := re.search(r"web UI:\s+(http://[^/\s]+)", line):
                break
        async with aiohttp.ClientSession() as web:  # until it answers (older releases
            while True:  # printed the address before listening)
                try:
                    async with web.get(f"{m.group(1)}/health") as r:
                        if r.status == 200:
                            return proc, m.group(1)
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)


async def _case(polling: int, websockets: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wasync-bench-") as data_dir:
        proc, url = await _start(data_dir)
        clients: list[socketio.AsyncClient] = []
        async with aiohttp.ClientSession() as web:
            sockets = []
            try:
                for _ in range(polling):
                    client = socketio.AsyncClient(reconnection=False)
                    await client.connect(url, auth={"apiKey": KEY}, transports=["polling"])
                    clients.append(client)
                for _ in range(websockets):
                    ws = await web.ws_connect(f"{url}/ws", headers={"X-Api-Key": KEY})
                    await ws.receive_json(timeout=10)
                    sockets.append(ws)
                await asyncio.sleep(1.0)  # long polls open
                started = time.perf_counter()
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    while proc.poll() is None:  # noqa: ASYNC110 - polling a process
                        await asyncio.sleep(0.01)
                seconds = time.perf_counter() - started
            finally:
                for client in clients:
                    if client.connected:
                        await client.disconnect()
                for ws in sockets:
                    await ws.close()
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                rest = proc.stderr.read() if proc.stderr else ""
        return {
            "polling_clients": polling,
            "websocket_clients": websockets,
            "seconds": round(seconds, 2),
            "exit_code": proc.returncode,
            "graceful_timeout_hit": "timeout graceful shutdown exceeded" in rest,
        }


async def main(rounds: int) -> None:
    cases = [(0, 0), (1, 0), (0, 1), (5, 5)]
    results: dict[str, list[dict[str, Any]]] = {}
    for polling, ws in cases:
        name = f"polling={polling},ws={ws}"
        results[name] = [await _case(polling, ws) for _ in range(rounds)]
    summary = {
        name: {
            "median_seconds": sorted(r["seconds"] for r in runs)[len(runs) // 2],
            "max_seconds": max(r["seconds"] for r in runs),
            "exit_codes": sorted({r["exit_code"] for r in runs}),
            "graceful_timeout_hit": any(r["graceful_timeout_hit"] for r in runs),
        }
        for name, runs in results.items()
    }
    baseline = summary["polling=0,ws=0"]["median_seconds"]
    worst = max(s["max_seconds"] for s in summary.values())
    print(
        json.dumps(
            {
                "benchmark": "shutdown",
                "rounds": rounds,
                "baseline_no_clients_seconds": baseline,
                "cases": summary,
                "target_seconds": 5.0,
                "meets_target": worst < 5.0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
