"""API fixtures: a runtime with the API services and one synced simulator session.

The runtime here has only the API installed (not the other features), so these tests
see exactly what the API does; tests/e2e drives the fully assembled `wasync demo`.
Every test runs on SQLite and PostgreSQL (the `db_url` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from wasync.api.app import asgi_app, create_app
from wasync.api.install import api_services
from wasync.api.session_control import SessionControl
from wasync.config import Settings
from wasync.engines.factory import EngineFactory, SimulatorOptions
from wasync.engines.simulator import Faults, Network, SimulatorEngine
from wasync.runtime import Runtime
from wasync.store.db import Database

API_KEY = "test-key-0123456789abcdef"
SESSION = "default"
SEED = 1
LIMIT = 30


@dataclass
class Api:
    runtime: Runtime
    control: SessionControl
    app: FastAPI
    client: httpx.AsyncClient
    engine: SimulatorEngine
    network: Network
    session_id: int

    def url(self, path: str) -> str:
        return f"/api/sessions/{SESSION}{path}"


async def start_runtime(db_url: str, data_dir: Path) -> tuple[Runtime, SessionControl]:
    settings = Settings(data_dir=data_dir, database_url=db_url, simulator_seed=SEED)
    runtime = Runtime(settings, db=Database(db_url))
    control, _ = api_services(runtime)
    runtime.manager.engines = EngineFactory(settings, SimulatorOptions(seed=SEED))
    await runtime.start()
    return runtime, control


async def add_simulator(
    runtime: Runtime,
    name: str,
    faults: Faults | None = None,
    *,
    sync: bool = True,
    network: Network | None = None,
) -> SimulatorEngine:
    engine = SimulatorEngine(network or Network.from_scale("tiny", SEED), faults or Faults())
    await runtime.add_session(name, engine, engine_name="simulator")
    if sync:
        await runtime.sync_chats(name, LIMIT)
    return engine


@contextlib.asynccontextmanager
async def api_on(db_url: str, tmp_path: Path, network: Network | None = None) -> AsyncIterator[Api]:
    """A runtime with the API and one synced simulator session (of `network`)."""
    runtime, control = await start_runtime(db_url, tmp_path)
    app = create_app(runtime, api_key=API_KEY)
    engine = await add_simulator(runtime, SESSION, network=network)
    transport = httpx.ASGITransport(app=asgi_app(app))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://wasync.test", headers={"X-Api-Key": API_KEY}
    ) as client:
        try:
            yield Api(
                runtime,
                control,
                app,
                client,
                engine,
                engine.network,
                runtime.session(SESSION).session_id,
            )
        finally:
            await runtime.stop()


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_on(db_url, tmp_path) as found:
        yield found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    runtime: Runtime
    app: FastAPI


@pytest.fixture
async def live_server(sqlite_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A real uvicorn server on 127.0.0.1 (a free port) with the Socket.IO wrapper."""
    runtime, _control = await start_runtime(sqlite_url, tmp_path)
    app = create_app(runtime, api_key=API_KEY)
    port = free_port()
    config = uvicorn.Config(
        asgi_app(app), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield LiveServer(f"http://127.0.0.1:{port}", runtime, app)
    finally:
        await app.state.socketio.close()
        server.should_exit = True
        await task
        await runtime.stop()
