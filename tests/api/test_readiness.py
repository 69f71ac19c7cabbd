"""`GET /ready`: 503 while the mirror cannot be written, 200 again once it can.

The full disk is real where this machine allows it: a 6 MiB tmpfs holds the data
directory and a file fills what is left (skipped, saying why, where mounting is not
allowed). Everywhere else SQLite's own limit stands in for the disk: `PRAGMA
max_page_count` makes every commit that grows the file fail with SQLITE_FULL, the
very error ("database or disk is full") a full disk gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from wasync.api.app import asgi_app, create_app
from wasync.runtime import Runtime

from .conftest import API_KEY, SESSION, add_simulator, start_runtime

FILLER = "filler"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(disk)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here ({exc}); the max_page_count case runs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=10)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = disk / FILLER
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


async def _ready(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    r = await client.get("/ready")  # without a key, like /health
    return r.status_code, r.json()


@contextlib.asynccontextmanager
async def served(data_dir: Path) -> AsyncIterator[tuple[Runtime, Any, httpx.AsyncClient]]:
    runtime, _ = await start_runtime(f"sqlite:///{data_dir / 'wasync.db'}", data_dir)
    app = create_app(runtime, api_key=API_KEY)
    engine = await add_simulator(runtime, SESSION)
    writer = runtime.writer  # the process's one writer
    writer.max_retry_delay = 0.2  # retry quickly once the disk has room again
    transport = httpx.ASGITransport(app=asgi_app(app))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield runtime, engine, c
    finally:
        # Room again, or stopping would wait for the writer to commit what it holds.
        with contextlib.suppress(FileNotFoundError):
            (data_dir / FILLER).unlink()
        runtime.db.engine.dispose()
        await runtime.stop()


async def until_not_ready(
    client: httpx.AsyncClient, push_live: Callable[[int], Awaitable[object]]
) -> dict[str, Any]:
    """Live traffic until a commit fails (the WAL reuses the room it has first)."""
    async with asyncio.timeout(60):
        while True:
            await push_live(200)
            await asyncio.sleep(0.2)  # the writer commits within 100 ms
            status, body = await _ready(client)
            if status == 503:
                return body


async def until_ready(client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(60):  # the writer retries, then commits what it held
        while (await _ready(client))[0] != 200:
            await asyncio.sleep(0.05)


async def test_ready_when_all_is_well(db_url: str, tmp_path: Path) -> None:
    runtime, _ = await start_runtime(db_url, tmp_path)
    app = create_app(runtime, api_key=API_KEY)
    await add_simulator(runtime, SESSION)
    try:
        transport = httpx.ASGITransport(app=asgi_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            status, body = await _ready(c)
    finally:
        await runtime.stop()
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["database"] == {"ok": True, "error": None}
    assert body["writes"]["ok"] is True and body["writes"]["failing"] == {}


async def test_not_ready_while_the_disk_is_full(small_disk: Path) -> None:
    async with served(small_disk) as (_runtime, engine, client):
        assert (await _ready(client))[0] == 200
        filler = fill(small_disk)
        body = await until_not_ready(client, engine.push_live)
        assert body["status"] == "not_ready" and body["database"]["ok"] is True
        assert "disk is full" in body["writes"]["failing"][SESSION]
        assert body["writes"]["retriedCommits"] >= 1
        health = await client.get("/health")
        assert health.status_code == 200  # alive all the same: a restart would not help
        filler.unlink()
        await until_ready(client)
        assert (await _ready(client))[1]["writes"]["failing"] == {}


async def test_not_ready_when_sqlite_refuses_to_grow(tmp_path: Path) -> None:
    async with served(tmp_path) as (runtime, engine, client):
        assert (await _ready(client))[0] == 200
        writes = runtime.db.engine
        limit = {"pages": 0}

        def cap(dbapi_conn: Any, _record: Any) -> None:
            if limit["pages"]:
                dbapi_conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

        event.listen(writes, "connect", cap)
        with runtime.db.read() as conn:
            limit["pages"] = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        writes.dispose()  # the writer's next connection has the cap
        try:
            body = await until_not_ready(client, engine.push_live)
            assert "full" in body["writes"]["failing"][SESSION]
        finally:
            limit["pages"] = 0
            writes.dispose()
        await until_ready(client)
        event.remove(writes, "connect", cap)
