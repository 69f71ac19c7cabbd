"""SIGKILL a running wasync (a runtime with history installed over a simulator session)
at seeded moments of its initial sync, live ingestion, reconnect with gap fill and
full-history backfill; start it again; at the end the mirror equals the network.

The child process is this module run as a script (`python -m ... URL SEED FILE`).
Its network is deterministic by seed: history, then chunks of live traffic drawn in
order, the last one sent during an outage. A real network never forgets what was
sent, so before drawing a chunk the child notes it in FILE (write-ahead), and a
restarted child first draws every chunk an earlier run drew: it sees the same
network, and delivers its scripted traffic again, which must change nothing stored.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import select

from wasync.config import Settings
from wasync.domain.events import Event
from wasync.engines.simulator import Faults, Network, NetworkConfig, SimulatorEngine
from wasync.history import HistoryOptions, install
from wasync.jobs import queries as job_queue
from wasync.runtime import Runtime
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.schema import messages

from .mirror import assert_changes_mirrored

PHASES = ("initial", "live", "outage", "gapfill", "backfill")
ROOT = Path(__file__).resolve().parents[2]


LIVE_CHUNKS, CHUNK, OUTAGE = 8, 25, 250


class Scenario:
    """The network of a seed, and its live traffic drawn chunk by chunk."""

    def __init__(self, seed: int, ledger: Path | None = None) -> None:
        self.network = Network(
            NetworkConfig(seed=seed, contacts=14, groups=3, individual_chats=10, messages=2_500)
        )
        self.chunks: list[list[Event]] = []
        self.ledger = ledger
        drawn = int(ledger.read_text() or 0) if ledger is not None and ledger.exists() else 0
        for k in range(drawn):
            self.chunk(k)

    def chunk(self, k: int) -> list[Event]:
        """Chunk k (0..LIVE_CHUNKS-1 live, LIVE_CHUNKS the outage), drawn if needed."""
        while len(self.chunks) <= k:
            n = len(self.chunks)
            if self.ledger is not None:
                self.ledger.write_text(str(n + 1))
                with self.ledger.open("rb+") as f:
                    os.fsync(f.fileno())
            self.chunks.append(self.network.live_events(OUTAGE if n == LIVE_CHUNKS else CHUNK))
        return self.chunks[k]


def _mark(phase: str) -> None:
    print(f"phase {phase}", flush=True)


async def _idle(db: Database, session_id: int) -> None:
    while True:
        with db.read() as conn:
            counts = job_queue.counts(conn, session_id=session_id)
        if all(c["queued"] + c["running"] == 0 for k, c in counts.items() if "history" in k):
            return
        await asyncio.sleep(0.02)


async def child(url: str, seed: int, ledger: Path) -> None:
    plan = Scenario(seed, ledger)
    net = plan.network
    engine = SimulatorEngine(net, Faults(offline_retention=25, history_delay=0.004))
    runtime = Runtime(Settings(limit_per_chat=5), db=Database(url))
    options = HistoryOptions(
        page_size=20, gap_fill_delay=0.05, poll_interval=0.02, retry_delay=0.05, lease_seconds=10
    )
    service = install(runtime, options)
    await runtime.start()
    handle = await runtime.add_session("default", engine, engine_name="simulator")
    _mark("initial")
    await runtime.sync_chats("default")
    _mark("live")
    for k in range(LIVE_CHUNKS):
        await engine.push(plan.chunk(k))
        await asyncio.sleep(0.02)
    await engine.drained()
    await handle.sync.flush()
    _mark("outage")
    await engine.drop_connection()
    await engine.push(plan.chunk(LIVE_CHUNKS))  # the server keeps only the newest 25
    await engine.connect()
    await engine.drained()
    await handle.sync.flush()
    _mark("gapfill")
    await _idle(runtime.db, handle.session_id)
    _mark("backfill")
    for jid in net.chat_jids():
        await service.request("default", jid, full=True)
    await _idle(runtime.db, handle.session_id)
    _mark("done")
    await runtime.stop()


def _run(url: str, seed: int, ledger: Path, kill: tuple[str, float] | None) -> int | None:
    """Run the child; with `kill`, SIGKILL it `delay` seconds into `phase`."""
    module = "tests.integration.test_crash_runtime"
    proc = subprocess.Popen(
        [sys.executable, "-m", module, url, str(seed), str(ledger)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # One reader per pipe, each the only one to touch it (no communicate() racing a
    # reader thread over a pipe it closes).
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def read_out(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line.strip())
        lines.put(None)

    readers = [
        threading.Thread(target=read_out, args=(proc.stdout,)),
        threading.Thread(target=lambda: errors.extend(proc.stderr or ())),
    ]
    for reader in readers:
        reader.start()
    try:
        while kill is not None:
            line = lines.get(timeout=120)
            if line is None or line == "phase done":
                break
            if line == f"phase {kill[0]}":
                try:
                    proc.wait(kill[1])
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode in (0, -signal.SIGKILL), "".join(errors)
    return proc.returncode


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wasync.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_at_random_moments_the_mirror_still_equals_the_network(
    url: str, tmp_path: Path
) -> None:
    seed, ledger = 11, tmp_path / "drawn"
    rng = random.Random(seed)
    # One kill in each phase, at a seeded moment. A moment can come after the work of
    # its phase is over: that run ends cleanly, and another moment of the same phase
    # is drawn (sooner, on average), so every phase is killed once.
    runs: list[tuple[tuple[str, float], int | None]] = []
    for phase in PHASES:
        for attempt in range(4):
            kill = (phase, round(rng.uniform(0.0, 0.25 / (attempt + 1)), 3))
            runs.append((kill, _run(url, seed, ledger, kill)))
            if runs[-1][1] == -signal.SIGKILL:
                break
    killed = {phase for (phase, _), code in runs if code == -signal.SIGKILL}
    assert killed == set(PHASES), runs
    assert _run(url, seed, ledger, None) == 0

    plan = Scenario(seed)
    for k in range(LIVE_CHUNKS + 1):
        plan.chunk(k)
    net = plan.network
    db = Database(url)
    try:
        with db.read() as conn:
            stored = queries.all_messages(conn, 1)
            keys = conn.execute(
                select(messages.c.chat_jid, messages.c.sender_jid, messages.c.message_id)
            ).all()
            states = [queries.get_sync_state(conn, 1, jid) for jid in net.chat_jids()]
            counts = job_queue.counts(conn, session_id=1)
        assert len(keys) == len(set(keys))  # no duplicate row, and no placeholder left
        assert sorted(m.key for m in stored) == sorted(m.key for m in net.iter_all_messages())
        assert all(s is not None and s.fully_synced and s.gap_status is None for s in states)
        assert all(c["failed"] == 0 for c in counts.values())
        assert_changes_mirrored(db, 1, net)  # edits, deletes, reactions: as on the network
    finally:
        db.close()


if __name__ == "__main__":
    asyncio.run(child(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
