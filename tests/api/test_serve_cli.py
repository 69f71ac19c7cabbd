"""`wasync serve` and `wasync demo` as processes: refusals, keys, restarts."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from wasync.cli import app

from .server_process import spawn


async def until(cond: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not await cond():
            await asyncio.sleep(0.05)


def _run(args: list[str], tmp_path: Path) -> Result:
    return CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path)])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--host", "0.0.0.0", "--no-auth"], "refusing to serve on 0.0.0.0 without"),
        (["serve", "--engine", "carrier-pigeon"], "unknown engine 'carrier-pigeon'"),
        (["demo", "--scale", "galactic"], "unknown scale 'galactic'"),
        (["serve", "--port", "0", "--database", "postgresql://u@127.0.0.1:1/x"], "cannot open"),
    ],
)
def test_refusals_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = _run(args, tmp_path)
    assert out.exit_code == 1
    assert message in out.stderr and "Traceback" not in out.output + out.stderr


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _run(["serve", "--port", str(port)], tmp_path)
    assert out.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr


@pytest.mark.slow
async def test_sessions_come_back_after_a_restart(tmp_path: Path) -> None:
    demo = spawn(
        ["demo", "--port", "0", "--data-dir", str(tmp_path), "--scale", "tiny", "--live-rate", "0"]
    )
    try:
        assert demo.key and demo.base_url, demo.output()
        key_file = tmp_path / "api-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() == demo.key
        async with httpx.AsyncClient(
            base_url=demo.base_url, headers={"X-Api-Key": demo.key}
        ) as http:

            async def demo_synced() -> bool:
                s = (await http.get("/api/sessions/demo")).json()
                return bool(s["status"] == "connected" and not s["syncing"])

            await until(demo_synced)
            chats = (await http.get("/api/sessions/demo/chats?limit=500")).json()["items"]
            assert chats
    finally:
        assert demo.stop() == 0, demo.output()

    served = spawn(
        ["serve", "--port", "0", "--data-dir", str(tmp_path)],
        env={"WASYNC_SIMULATOR_SCALE": "tiny"},
    )
    try:
        text = served.output()
        assert demo.key not in text  # a stored key is not printed again
        assert "the one in" in text and "sessions: demo" in text
        async with httpx.AsyncClient(
            base_url=served.base_url, headers={"X-Api-Key": demo.key}
        ) as http:

            async def running() -> bool:
                return bool((await http.get("/api/sessions/demo")).json()["running"])

            await until(running)
            again = (await http.get("/api/sessions/demo/chats?limit=500")).json()["items"]
            assert {c["jid"] for c in again} == {c["jid"] for c in chats}
            assert (await http.get("/api/sessions")).status_code == 200
            anonymous = await http.get("/api/sessions", headers={"X-Api-Key": "nope-nope-nope"})
            assert anonymous.status_code == 401
    finally:
        assert served.stop() == 0, served.output()
