"""Driving the Baileys engine offline: its real sidecar, real WAProto objects.

`build()` runs tests/integration/baileys_fixture.mjs, which makes WebMessageInfos and
history-sync notifications with Baileys' own `proto`. The engine runs its sidecar
with the test hooks on (sidecar/hooks.mjs) and WhatsApp's WebSocket pointed at a
loopback port that accepts and never answers, so nothing leaves this machine and the
socket stays "connecting" while the tests play the WhatsApp side.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wasync.engines.baileys import install
from wasync.engines.baileys.auth import AuthStore
from wasync.engines.baileys.engine import BaileysEngine
from wasync.engines.baileys.options import BaileysOptions
from wasync.engines.baileys.sidecar import SidecarError, SidecarGone
from wasync.sessions.supervision import Backoff

FIXTURE = Path(__file__).with_name("baileys_fixture.mjs")
ME = "5511900000001@s.whatsapp.net"
ME_LID = "90000000001@lid"

_status = install.check()
requires_sidecar = pytest.mark.skipif(
    not _status.available,
    reason=f"the Baileys sidecar cannot run here: {_status.reason}",
)


def build(*items: dict[str, Any]) -> list[str]:
    """Real WAProto objects (base64) built by Baileys in Node."""
    out = subprocess.run(
        [str(install.node_binary()), str(FIXTURE)],
        input=json.dumps({"items": list(items)}),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"BAILEYS_SIDECAR_DIR": str(_status.directory), "PATH": "/usr/bin:/bin"},
    )
    result: list[str] = json.loads(out.stdout)
    return result


def message(
    chat: str,
    msg_id: str,
    timestamp: int,
    body: dict[str, Any],
    *,
    from_me: bool = False,
    participant: str | None = None,
    push_name: str | None = None,
) -> dict[str, Any]:
    key: dict[str, Any] = {"remoteJid": chat, "fromMe": from_me, "id": msg_id}
    if participant:
        key["participant"] = participant
    item: dict[str, Any] = {"kind": "message", "key": key, "timestamp": timestamp, "message": body}
    if push_name:
        item["pushName"] = push_name
    return item


def history(
    notification_id: str, sync: dict[str, Any], request_id: str | None = None
) -> dict[str, Any]:
    return {
        "kind": "history",
        "me": ME,
        "id": notification_id,
        "sync": sync,
        "requestId": request_id,
    }


@pytest.fixture
def silent_ws() -> Iterator[str]:
    """A WebSocket address on loopback that accepts and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.getsockname()[1]}/ws/chat"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def paired_engine(
    tmp_path: Path, ws_url: str, *, history_timeout: float = 10.0, session: str = "b"
) -> BaileysEngine:
    auth = AuthStore(session, path=tmp_path / "sessions" / f"{session}.baileys.db")
    creds = build({"kind": "creds", "me": {"id": "5511900000001:7@s.whatsapp.net", "lid": ME_LID}})
    auth.apply([("creds", "", creds[0])])
    options = BaileysOptions(
        session=session,
        auth=auth,
        connect_timeout=20.0,
        history_timeout=history_timeout,
        ws_url=ws_url,
        test_hooks=True,
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    return BaileysEngine(options)


async def hook(engine: BaileysEngine, op: str, args: dict[str, Any] | None = None) -> Any:
    """One test-hook call, waiting (bounded) for the sidecar and its socket."""
    for _ in range(400):
        sidecar = engine._sidecar
        if sidecar is not None and sidecar.running:
            try:
                return await sidecar.request(op, args or {}, 10)
            except (SidecarError, SidecarGone) as exc:
                if "no socket" not in str(exc) and not isinstance(exc, SidecarGone):
                    raise
        await asyncio.sleep(0.025)
    raise AssertionError(f"the sidecar never took {op}")


async def open_socket(engine: BaileysEngine) -> None:
    """WhatsApp's side says the connection is open."""
    await hook(engine, "test.emit", {"event": "connection.update", "data": {"connection": "open"}})


async def upsert(engine: BaileysEngine, proto_b64: str, **alt: str) -> None:
    await hook(engine, "test.upsert", {"proto": proto_b64, "type": "notify", "alt": alt})
