"""The API's database reads run on a few threads, not anyio's default forty."""

from __future__ import annotations

import os
from pathlib import Path

import anyio.to_thread
import httpx

from wasync.api.app import asgi_app, create_app, read_threads
from wasync.config import Settings
from wasync.runtime import Runtime
from wasync.store.db import Database


def test_the_default_is_the_cpus_and_at_least_two() -> None:
    assert read_threads(None) == max(2, os.cpu_count() or 1)
    assert read_threads(5) == 5


async def test_the_served_app_caps_the_read_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wasync.db'}"
    runtime = Runtime(Settings(data_dir=tmp_path, api_threads=3), db=Database(url))
    app = asgi_app(create_app(runtime, api_key=None))  # installs its services first
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            assert (await c.get("/api/sessions")).status_code == 200
        assert anyio.to_thread.current_default_thread_limiter().total_tokens == 3
    finally:
        await runtime.stop()
