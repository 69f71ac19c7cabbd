"""API key: required everywhere but /health (and the UI shells), from settings or a file."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import httpx
import pytest

from wasync.api.api_key import key_file, resolve_api_key
from wasync.api.app import asgi_app, create_app
from wasync.config import Settings
from wasync.errors import ConfigError

from .conftest import API_KEY, Api, add_simulator, start_runtime


def _api_routes(api: Api) -> list[tuple[str, str]]:
    """Every documented route but /health, with its parameters filled in."""
    out = []
    paths = api.app.openapi()["paths"]
    for template, operations in paths.items():
        if not template.startswith(("/api/", "/metrics")):
            continue
        path = re.sub(r"\{[^}]+\}", "x1", template)
        out.extend((method.upper(), path) for method in sorted(operations))
    return out


async def test_every_api_route_needs_the_key(api: Api) -> None:
    routes = _api_routes(api)
    assert len(routes) >= 18
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://t"
    ) as anonymous:
        for method, path in routes:
            for headers in ({}, {"X-Api-Key": "wrong-key-wrong-key"}, {"Authorization": "Basic x"}):
                r = await anonymous.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"
        health = await anonymous.get("/health")
        assert health.status_code == 200 and health.json()["auth"] is True
        # The UI shells hold no data; what they show comes through authenticated calls.
        assert (await anonymous.get("/ui/login")).status_code == 200
        ok = await anonymous.get("/api/sessions", headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200


async def test_auth_off_serves_without_a_key(db_url: str, tmp_path: Path) -> None:
    runtime, _ = await start_runtime(db_url, tmp_path)
    app = create_app(runtime, api_key=None)
    await add_simulator(runtime, "default", sync=False)
    try:
        transport = httpx.ASGITransport(app=asgi_app(app))
        # A loopback name: without a key only those are served (test_browser_guard.py).
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            r = await client.get("/api/sessions")
            assert r.status_code == 200
            assert [s["name"] for s in r.json()["items"]] == ["default"]
            assert (await client.get("/health")).json()["auth"] is False
    finally:
        await runtime.stop()


def test_a_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = resolve_api_key(settings, "127.0.0.1")
    assert first.source == "generated" and first.value and len(first.value) >= 32
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600
    assert first.value not in repr(first)
    again = resolve_api_key(settings, "0.0.0.0")
    assert again.source == "file" and again.value == first.value
    # A copy that widened the permissions is narrowed again.
    os.chmod(key_file(tmp_path), 0o644)
    resolve_api_key(settings, "127.0.0.1")
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600


def test_configured_key_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    chosen = resolve_api_key(Settings(data_dir=tmp_path, api_key=API_KEY), "0.0.0.0")
    assert chosen.source == "settings" and chosen.value == API_KEY
    assert not key_file(tmp_path).exists()
    with pytest.raises(ConfigError, match="too short"):
        resolve_api_key(Settings(data_dir=tmp_path, api_key="short"), "127.0.0.1")
    key_file(tmp_path).write_text("x\n")
    with pytest.raises(ConfigError, match="no usable key"):
        resolve_api_key(Settings(data_dir=tmp_path), "127.0.0.1")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_auth_may_be_off_on_loopback(tmp_path: Path, host: str) -> None:
    key = resolve_api_key(Settings(data_dir=tmp_path, auth=False), host)
    assert key.value is None and key.source == "disabled"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_no_key_on_a_public_address_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError, match="refusing to serve"):
        resolve_api_key(Settings(data_dir=tmp_path, auth=False), host)
