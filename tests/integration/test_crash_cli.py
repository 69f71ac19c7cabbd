"""SIGKILL the `wasync` command in the middle of a sync and of a full-history load,
at seeded moments, then run it again: the mirror ends equal to the network, with no
duplicate row, and the history job counts every page exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from wasync.engines.simulator import Network
from wasync.errors import StoreError
from wasync.jobs import queries as queue
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.schema import jobs, messages

from .mirror import assert_messages_equal, assert_no_duplicates

SEED, SCALE, LIMIT, PAGE = 7, "small", 20, 10
WASYNC = str(Path(sys.executable).parent / "wasync")


def _count(db: Database, chat: str | None) -> int:
    stmt = select(func.count()).select_from(messages)
    if chat is not None:
        stmt = stmt.where(messages.c.chat_jid == chat)
    try:
        with db.read() as conn:
            return int(conn.execute(stmt).scalar_one())
    except StoreError:
        return 0  # the child has not created the schema yet


def _start(args: list[str], url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WASYNC_SIMULATOR_HISTORY_DELAY": "0.005"}
    common = ["--seed", str(SEED), "--scale", SCALE, "--database", url, "--json"]
    return subprocess.Popen(
        [WASYNC, *args, *common], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _kill_when(
    db: Database, args: list[str], url: str, chat: str | None, threshold: int
) -> int | None:
    """Start the command, SIGKILL it once `threshold` messages are stored; its exit code."""
    proc = _start(args, url)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and _count(db, chat) < threshold:
            assert time.monotonic() < deadline, "the command made no progress"
            time.sleep(0.003)
    finally:
        proc.send_signal(signal.SIGKILL)  # also when the wait failed: nothing left running
        proc.communicate()
    return proc.returncode


def _complete(args: list[str], url: str) -> None:
    proc = _start(args, url)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()


@pytest.mark.slow
def test_killed_sync_and_history_resume_to_an_exact_mirror(tmp_path: Path) -> None:
    # SQLite only: test_crash_runtime.py runs its kills on PostgreSQL too.
    url = f"sqlite:///{tmp_path / 'wasync.db'}"
    net = Network.from_scale(SCALE, SEED)
    chat = max(net.chat_jids(), key=net.message_count)
    initial = sum(min(LIMIT, net.message_count(j)) for j in net.chat_jids())
    total = net.message_count(chat)
    rng = random.Random(20261122)
    db = Database(url)
    sync = ["sync"]
    history = ["history", "--chat", chat, "--full", "--page-size", str(PAGE)]
    try:
        killed = []
        for threshold in sorted(rng.sample(range(1, initial), 2)):
            killed.append(_kill_when(db, sync, url, None, threshold))
        _complete(sync, url)
        for threshold in sorted(rng.sample(range(LIMIT + 1, total), 3)):
            killed.append(_kill_when(db, history, url, chat, threshold))
        _complete(history, url)
        assert killed.count(-signal.SIGKILL) >= 5  # really killed mid-way, not finished

        sid = 1
        expected = [m for j in net.chat_jids() if j != chat for m in net.newest(j, LIMIT)]
        assert_messages_equal(db, sid, expected + list(net.messages(chat)))
        assert_no_duplicates(db)
        with db.read() as conn:
            state = queries.get_sync_state(conn, sid, chat)
            backfills = [queue.Job.from_row(r) for r in conn.execute(select(jobs))]
        assert state is not None and state.fully_synced
        assert [j.state for j in backfills] == ["done"]  # one job, resumed each time
        # Every page counted once: none repeated, none skipped.
        assert backfills[0].payload["done"] == -(-(total - LIMIT) // PAGE)
        assert backfills[0].payload["messages"] == total - LIMIT
    finally:
        db.close()
