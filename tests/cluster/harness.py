"""Real `wasync serve` nodes on one PostgreSQL schema, started, signalled and cleaned up
by pid, with every wait bounded."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.api.server_process import ServerProcess, spawn
from wasync.store.db import Database

KEY = "cluster-test-key-0123456789"
HEADERS = {"X-Api-Key": KEY}
LOG_TAIL = 60  # lines of each node's log shown when a test fails


def wait_for(cond: Callable[[], bool], within: float, what: str, step: float = 0.1) -> float:
    """Poll `cond` until true; the seconds it took. Fails the test after `within` s."""
    started = time.monotonic()
    while True:
        try:
            if cond():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass  # a node that is starting or stopping
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(step)


@dataclass
class Node:
    name: str
    server: ServerProcess
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def alive(self) -> bool:
        return self.server.proc.poll() is None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=HEADERS, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 60)
        return httpx.post(self.url + path, headers=HEADERS, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(self.url + path, headers=HEADERS, timeout=60)

    def log(self) -> str:
        return self.server.output()


@dataclass
class Cluster:
    url: str
    root: Path
    env: dict[str, str]
    nodes: dict[str, Node] = field(default_factory=dict)

    def start(self, name: str, **env: str) -> Node:
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        server = spawn(
            ["serve", "--port", "0", "--data-dir", str(data_dir), "--log-level", "info"],
            env={**self.env, "WASYNC_NODE_NAME": name, **env},
            ready=90,
        )
        node = Node(name, server, data_dir)
        self.nodes[name] = node
        return node

    def start_all(self, names: list[str]) -> list[Node]:
        """Start nodes at the same time (as a deployment does), each ready when returned."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(names)) as pool:
            return list(pool.map(self.start, names))

    def live(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive()]

    def view(self, via: Node | None = None) -> dict[str, list[str]]:
        """{node: [sessions]} as GET /api/cluster says."""
        node = via or self.live()[0]
        found = node.get("/api/cluster").json()
        return {n["id"]: n["sessions"] for n in found["nodes"]}

    def owners(self, via: Node | None = None) -> dict[str, str]:
        return {s: n for n, ss in self.view(via).items() for s in ss}

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        os.kill(self.nodes[name].pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.nodes[name].server.proc.wait(60)

    def stop_all(self) -> None:
        for node in self.nodes.values():
            proc = node.server.proc
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a paused node must hear the stop
            node.server.stop(timeout=30)

    def database(self) -> Database:
        return Database(self.url)


@contextmanager
def cluster(url: str, root: Path, **env: str) -> Iterator[Cluster]:
    base = {
        "WASYNC_DATABASE_URL": url,
        "WASYNC_API_KEY": KEY,
        "WASYNC_SESSION_ENGINE": "simulator",
        "WASYNC_LEASE_SECONDS": "4",
        "WASYNC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WASYNC_WEBHOOK_RETRY_BASE": "0.2",
        "WASYNC_WEBHOOK_RETRY_MAX": "1",
        **env,
    }
    found = Cluster(url, root, base)
    try:
        yield found
    except BaseException:
        # What each node was doing (the test timeout too raises here): a failure of
        # several processes is read in their logs.
        for node in found.nodes.values():
            tail = "".join(node.server.lines[-LOG_TAIL:])
            print(f"--- node {node.name} (pid {node.pid}), its last {LOG_TAIL} lines:\n{tail}")
        raise
    finally:
        found.stop_all()
