"""`wasync pair` and `wasync sync --engine neonize` as a user runs them, with no network.

No machine here reaches WhatsApp, so these check the failure paths a user meets first:
a clear one-line error and an exit code, well within the 30 s connect bound (the
subprocess timeouts below are limits, not measurements).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.integration.neonize_protos import (
    E,
    H,
    N,
    dispatch,
    history,
    jid,
    new_engine,
    web_message,
)
from wasync.cli import app
from wasync.commands.pair import PairProgress, _pair
from wasync.config import Settings
from wasync.domain.events import SessionStatus
from wasync.store.db import Database, sqlite_url_for
from wasync.store.schema import messages, sessions
from wasync.store.sessions import ensure_session, set_status

runner = CliRunner()
EXE = Path(sys.executable).parent / "wasync"


def _wasync(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WASYNC_DATA_DIR": str(data_dir)}
    env.pop("WASYNC_DATABASE_URL", None)
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def silent_proxy() -> Iterator[str]:
    """A proxy that accepts connections and never answers: a network that hangs."""
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
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_pair_without_network_fails_clearly(tmp_path: Path, refusing_proxy: str) -> None:
    out = _wasync("pair", "--session", "phone1", "--proxy", refusing_proxy, data_dir=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "error:" in out.stderr and "WhatsApp" in out.stderr
    assert "Traceback" not in out.stderr
    # The session exists and says why it is not connected.
    listed = _wasync("session", "list", "--json", data_dir=tmp_path)
    assert '"name": "phone1"' in listed.stdout and '"paired": false' in listed.stdout


def test_pair_against_a_silent_network_times_out(tmp_path: Path, silent_proxy: str) -> None:
    out = _wasync("pair", "--timeout", "2", "--proxy", silent_proxy, data_dir=tmp_path)
    assert out.returncode == 1
    assert "could not connect to WhatsApp within 2 s" in out.stderr
    assert "Traceback" not in out.stderr


def test_pair_checks_its_input_before_connecting(tmp_path: Path) -> None:
    bad_phone = runner.invoke(app, ["pair", "--phone", "12", "--data-dir", str(tmp_path)])
    assert bad_phone.exit_code == 1 and "too short" in bad_phone.stderr
    bad_name = runner.invoke(app, ["pair", "--session", "../x", "--data-dir", str(tmp_path)])
    assert bad_name.exit_code == 1 and "invalid session name" in bad_name.stderr


def test_a_logged_out_session_is_not_retried(tmp_path: Path) -> None:
    db = Database(sqlite_url_for(tmp_path))
    db.migrate()
    with db.write() as conn:
        sid = ensure_session(conn, "gone", "neonize")
        set_status(conn, sid, SessionStatus.BANNED, "WhatsApp temporarily banned this account")
    db.close()
    out = runner.invoke(
        app, ["sync", "--engine", "neonize", "--session", "gone", "--data-dir", str(tmp_path)]
    )
    assert out.exit_code == 1
    assert "session 'gone' is banned: WhatsApp temporarily banned this account" in out.stderr
    assert "wasync pair --session gone" in out.stderr


def test_importing_wasync_does_not_load_neonize() -> None:
    code = (
        "import sys, wasync, wasync.cli, wasync.engines.neonize, wasync.engines.factory;"
        "print(any(m == 'neonize' or m.startswith('neonize.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


async def test_pair_flow_links_records_the_account_and_mirrors_history(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `wasync pair` flow with WhatsApp's side played by real protobufs."""
    engine = new_engine(tmp_path / "t.db", own_jid=None, allow_pairing=True)
    phone = "5511988880008"
    alice = "5511911110001@s.whatsapp.net"
    conversation = H.Conversation(ID=alice, conversationTimestamp=1_700_000_000)
    conversation.messages.append(
        web_message(alice, "H1", 1_700_000_000, E.Message(conversation="first words"))
    )

    async def whatsapp_side() -> None:
        await engine.client.event._qr(engine.client, b"2@qr-code-1")
        await dispatch(
            engine,
            N.PairStatus(ID=jid(phone), BusinessName="", Platform="android", Status=2),
            N.Connected(status=True),
            history(0, [conversation], progress=100),
        )

    async def connect() -> None:
        engine.spawn(whatsapp_side(), "whatsapp")

    engine.connect = connect  # type: ignore[method-assign]
    with db.write() as conn:
        sid = ensure_session(conn, "t", "neonize")
    progress = PairProgress(sys.stdout, show_qr=True)
    engine.add_listener(progress.on_event)
    settings = Settings(data_dir=tmp_path, database_url=db.url)
    await _pair(settings, db, engine, "t", sid, progress, None, wait=30, settle=30)

    out = capsys.readouterr().out
    assert "Linked devices" in out and "linked as +5511988880008" in out
    assert "100% of the transfer" in out and "mirrors 1 chats and 1 messages" in out
    with db.read() as conn:
        assert conn.execute(select(sessions.c.jid)).scalar_one() == f"{phone}@s.whatsapp.net"
        assert conn.execute(select(messages.c.text)).scalar_one() == "first words"


def test_pairing_again_that_fails_puts_the_old_keys_back(
    tmp_path: Path, refusing_proxy: str
) -> None:
    from tests.integration.test_session_transfer import make_session

    keys = make_session(tmp_path, "phone1")
    before = keys.read_bytes()
    out = _wasync(
        "pair", "--session", "phone1", "--force", "--proxy", refusing_proxy, data_dir=tmp_path
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "the old keys are back" in out.stderr
    assert keys.read_bytes() == before
    assert not list(keys.parent.glob(f"{keys.name}.replaced-*"))


def test_full_history_and_a_number_of_days_do_not_go_together(tmp_path: Path) -> None:
    both = ["pair", "--full-history", "--history-days", "10", "--data-dir", str(tmp_path)]
    result = runner.invoke(app, both)
    assert result.exit_code == 1 and "not both" in result.stderr
