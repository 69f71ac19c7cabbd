"""Web pages of other origins: Origin checks, and Host checks when auth is off.

A page on another site can make the user's browser send "simple" requests (a form
POST needs no preflight) and open WebSockets to wasync on loopback; with DNS
rebinding it can even read the answers, under a host name of its own. None of that
may change anything or stream a byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from wasync.api.app import asgi_app, create_app
from wasync.api.browser_guard import BrowserPolicy
from wasync.config import Settings
from wasync.runtime import Runtime

from .conftest import API_KEY, SESSION, add_simulator, free_port, start_runtime

EVIL = "http://evil.example"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _runtime(db_url: str, tmp_path: Path, **settings: str) -> Runtime:
    runtime, _ = await start_runtime(db_url, tmp_path)
    runtime.settings = Settings(**{**runtime.settings.model_dump(), **settings})
    await add_simulator(runtime, SESSION, sync=False)
    return runtime


async def _status(client: httpx.AsyncClient) -> str:
    r = await client.get(f"/api/sessions/{SESSION}", headers={"X-Api-Key": API_KEY})
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


@pytest.fixture
async def open_client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A server with authentication off (`--no-auth`) on 127.0.0.1:8420."""
    runtime = await _runtime(db_url, tmp_path, allowed_hosts="wasync.lan")
    app = asgi_app(create_app(runtime, api_key=None))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8420") as c:
            yield c
    finally:
        await runtime.stop()


async def test_a_foreign_form_post_changes_nothing(open_client: httpx.AsyncClient) -> None:
    before = await _status(open_client)
    r = await open_client.post(
        f"/api/sessions/{SESSION}/logout", content=b"x=1", headers={**FORM, "Origin": EVIL}
    )
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert EVIL in r.json()["detail"]
    r = await open_client.delete(f"/api/sessions/{SESSION}", headers={"Origin": "null"})
    assert r.status_code == 403
    # Another port of the same machine is another origin too.
    r = await open_client.post(
        "/api/sessions",
        json={"name": "x1", "engine": "simulator"},
        headers={"Origin": "http://127.0.0.1:9999"},
    )
    assert r.status_code == 403
    assert await _status(open_client) == before
    names = [s["name"] for s in (await open_client.get("/api/sessions")).json()["items"]]
    assert names == [SESSION]


async def test_same_origin_and_no_origin_are_served(open_client: httpx.AsyncClient) -> None:
    # The UI (same origin) and API clients (no Origin at all) keep working.
    same = await open_client.post(
        "/api/sessions",
        json={"name": "ui", "engine": "simulator"},
        headers={"Origin": "http://127.0.0.1:8420"},
    )
    assert same.status_code == 201, same.text
    tool = await open_client.post("/api/sessions", json={"name": "tool", "engine": "simulator"})
    assert tool.status_code == 201, tool.text
    # Reads are the browser's business (no CORS headers: a foreign page cannot read them).
    assert (await open_client.get("/api/sessions", headers={"Origin": EVIL})).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8420", "127.0.0.1.nip.io"])
async def test_a_rebound_host_name_is_refused_without_auth(
    open_client: httpx.AsyncClient, host: str
) -> None:
    r = await open_client.get("/api/sessions", headers={"Host": host})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert "WASYNC_ALLOWED_HOSTS" in r.json()["detail"]
    r = await open_client.post(
        f"/api/sessions/{SESSION}/logout", headers={"Host": host, "Origin": f"http://{host}"}
    )
    assert r.status_code == 400
    assert await _status(open_client) != "logged_out"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8420", "localhost:8420", "LOCALHOST", "[::1]:8420", "wasync.lan:8420"]
)
async def test_loopback_and_configured_hosts_are_served(
    open_client: httpx.AsyncClient, host: str
) -> None:
    r = await open_client.get("/api/sessions", headers={"Host": host})
    assert r.status_code == 200, r.text


async def test_with_auth_origins_are_checked_and_hosts_are_not(db_url: str, tmp_path: Path) -> None:
    runtime = await _runtime(db_url, tmp_path, allowed_origins="https://dash.example.com/")
    app = asgi_app(create_app(runtime, api_key=API_KEY))
    key = {"X-Api-Key": API_KEY}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://wa.example.com"
        ) as c:
            # Behind a proxy any name may reach the server: the key protects it.
            assert (await c.get("/api/sessions", headers=key)).status_code == 200
            foreign = await c.post(
                "/api/sessions",
                json={"name": "a", "engine": "simulator"},
                headers={**key, "Origin": EVIL},
            )
            assert foreign.status_code == 403
            allowed = await c.post(
                "/api/sessions",
                json={"name": "b", "engine": "simulator"},
                headers={**key, "Origin": "https://dash.example.com"},
            )
            assert allowed.status_code == 201, allowed.text
            same = await c.post(
                "/api/sessions",
                json={"name": "c", "engine": "simulator"},
                headers={**key, "Origin": "https://wa.example.com"},  # TLS ended by a proxy
            )
            assert same.status_code == 201, same.text
    finally:
        await runtime.stop()


@pytest.fixture
async def open_server(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, FastAPI]]:
    """A real uvicorn server without authentication, for WebSocket and Socket.IO."""
    runtime = await _runtime(sqlite_url, tmp_path)
    app = create_app(runtime, api_key=None)
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
        yield f"127.0.0.1:{port}", app
    finally:
        await app.state.socketio.close()
        server.should_exit = True
        await task
        await runtime.stop()


async def _ws_handshake(address: str, headers: dict[str, str]) -> int:
    """The HTTP status of a WebSocket upgrade to /ws (101: accepted)."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(f"http://{address}/ws", headers=headers) as ws:
                first = await ws.receive_json(timeout=10)
                assert first["event"] == "ready"
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_websocket_from_a_foreign_origin_is_refused(
    open_server: tuple[str, FastAPI],
) -> None:
    address, _ = open_server
    port = address.rsplit(":", 1)[1]
    assert await _ws_handshake(address, {"Origin": EVIL}) == 403
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    assert await _ws_handshake(address, rebound) == 403
    assert await _ws_handshake(address, {"Origin": f"http://{address}"}) == 101
    assert await _ws_handshake(address, {}) == 101


async def test_socketio_from_a_foreign_origin_is_refused(
    open_server: tuple[str, FastAPI],
) -> None:
    address, app = open_server
    port = address.rsplit(":", 1)[1]
    handshake = "/socket.io/?EIO=4&transport=polling"
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        foreign = await http.get(handshake, headers={"Origin": EVIL})
        assert foreign.status_code in (400, 403)
        rebound = await http.get(
            handshake,
            headers={"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
        )
        assert rebound.status_code in (400, 403), rebound.text
        polling = await http.post(f"{handshake}&sid=x", content=b"40", headers={"Origin": EVIL})
        assert polling.status_code in (400, 403)
        # Nothing was opened for the refused handshakes.
        assert app.state.socketio.sio.eio.sockets == {}
        same = await http.get(handshake, headers={"Origin": f"http://{address}"})
        assert same.status_code == 200 and same.text.startswith("0{")
        client = await http.get(handshake)  # not a browser: no Origin
        assert client.status_code == 200 and client.text.startswith("0{")


def test_the_policy_reads_hosts_and_origins_as_people_write_them() -> None:
    policy = BrowserPolicy.build(
        auth=False,
        bound_host="::1",
        allowed_hosts="fd00::5, wasync.lan:8420, ",
        allowed_origins="https://Dash.Example.com/, null, ftp://x",
    )
    assert policy.hosts == {"::1", "fd00::5", "wasync.lan"}
    assert policy.origins == {"https://dash.example.com"}
    assert policy.host_allowed("[fd00::5]:8420") and policy.host_allowed("WASYNC.LAN")
    assert policy.host_allowed("127.8.9.10:1") and policy.host_allowed(None)
    assert not policy.host_allowed("[fd00::6]") and not policy.host_allowed("x y")
    assert policy.origin_allowed("https://dash.example.com", "127.0.0.1:8420")
    assert policy.origin_allowed("http://[::1]:8420", "[::1]:8420")
    assert not policy.origin_allowed("null", "127.0.0.1") and not policy.origin_allowed("x", None)
    keyed = BrowserPolicy.build(auth=True, bound_host="0.0.0.0")
    assert keyed.host_allowed("anything.example")
