"""SQLite, one machine: a session runs in one process at a time, whichever command or
server wants it; the second says who holds it and changes nothing."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.api.server_process import WASYNC, spawn
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.sessions import ensure_session, get_session

from .harness import wait_for

pytestmark = pytest.mark.slow


def _summary(db: Database, name: str) -> dict[str, int]:
    with db.read() as conn:
        return queries.summary(conn, get_session(conn, name).id)


def _running(url: str, name: str) -> bool:
    found = httpx.get(f"{url}/api/sessions/{name}", timeout=10)
    return bool(found.status_code == 200 and found.json()["node"])


def test_sync_refuses_a_session_the_server_runs_and_serve_waits_for_a_command(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = Database(f"sqlite:///{data / 'wasync.db'}")
    db.migrate()
    with db.write() as conn:
        ensure_session(conn, "demo", "simulator")
    env = {"WASYNC_SESSION_ENGINE": "simulator", "WASYNC_NODE_NAME": "box"}
    server = spawn(["serve", "--port", "0", "--data-dir", str(data), "--no-auth"], env=env)
    try:
        wait_for(lambda: _running(server.base_url, "demo"), within=30, what="demo running")
        before = _summary(db, "demo")
        sync = subprocess.run(
            [WASYNC, "sync", "--session", "demo", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sync.returncode == 1
        lines = sync.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in sync.stderr, sync.stderr
        assert "session 'demo' is running in wasync serve (node box)" in lines[0]
        assert _summary(db, "demo") == before  # nothing changed
    finally:
        assert server.stop() == 0
    # Now a command holds a new session; the server, started meanwhile, leaves it be,
    # and takes it once the command is done.
    with db.write() as conn:
        ensure_session(conn, "other", "simulator")
    command = subprocess.Popen(
        [WASYNC, "sync", "--session", "other", "--data-dir", str(data), "--scale", "small"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "WASYNC_SIMULATOR_HISTORY_DELAY": "0.2"},
    )
    try:
        wait_for(
            lambda: (
                (data / "wasync.db.locks" / "other.lock").exists()
                and (data / "wasync.db.locks" / "other.lock").stat().st_size > 0
            ),
            within=60,
            what="the command holding its session",
        )
        server = spawn(["serve", "--port", "0", "--data-dir", str(data), "--no-auth"], env=env)
        try:
            held = httpx.get(f"{server.base_url}/api/sessions/other", timeout=10).json()
            if command.poll() is None:
                assert held["node"] and held["node"] != "box", held  # the command has it
                answer = httpx.post(f"{server.base_url}/api/sessions/other/sync-chats", timeout=30)
                assert answer.status_code == 409 and "wasync sync" in answer.json()["detail"]
            assert command.wait(120) == 0
            started = time.monotonic()
            wait_for(
                lambda: (
                    httpx.get(f"{server.base_url}/api/sessions/other", timeout=10).json()["node"]
                    == "box"
                ),
                within=30,
                what="the server taking the session the command let go",
            )
            assert time.monotonic() - started < 30
        finally:
            assert server.stop() == 0
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(30)
        if command.stderr is not None:
            command.stderr.close()
        db.close()
