"""The command line cannot hurt: one test per trap a new user fell into.

Each names the trap: a command that made a database or a session by accident, a
session rebuilt with another simulated network than it was made with, a summary that
counted re-fetched messages as new, help that showed `<str>`.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from wasync import __version__
from wasync.api.install import api_services
from wasync.api.server import DemoOptions, _start_demo
from wasync.cli import app
from wasync.config import Settings, sqlite_url_for
from wasync.engines.factory import EngineFactory, SimulatorOptions
from wasync.engines.simulator import Network
from wasync.runtime import Runtime
from wasync.store.db import Database
from wasync.store.schema import chats
from wasync.store.sessions import find_session, list_sessions

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _ok(args: list[str], data_dir: Path) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def _refused(args: list[str], data_dir: Path) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no progress bar before it
    return " ".join(result.stderr.split())


def _session_names(data_dir: Path) -> list[str]:
    db = Database(f"sqlite:///{data_dir / 'wasync.db'}")
    try:
        with db.read() as conn:
            return [r.name for r in list_sessions(conn)]
    finally:
        db.close()


def test_history_after_a_small_sync_uses_the_small_network(tmp_path: Path) -> None:
    """Was: `history` defaulted to --scale tiny, and its anchor was not a message."""
    net = Network.from_scale("small", 2)
    chat = max(net.chat_jids(), key=net.message_count)
    _ok(["sync", "--scale", "small", "--seed", "2", "--limit-per-chat", "3"], tmp_path)
    out = _ok(["history", "--chat", chat, "--pages", "1", "--page-size", "5"], tmp_path)
    assert out["status"] == "done" and out["error"] is None
    assert out["storedMessages"] == 3 + 5


def test_asking_another_network_for_a_session_is_refused(tmp_path: Path) -> None:
    _ok(["sync", "--scale", "small", "--limit-per-chat", "1"], tmp_path)
    message = _refused(["sync", "--scale", "tiny"], tmp_path)
    assert "was made with --scale small, not tiny" in message
    chat = Network.from_scale("small", 1).chat_jids()[0]
    assert "--seed 1, not 7" in _refused(["history", "--chat", chat, "--seed", "7"], tmp_path)


def test_a_typo_in_session_creates_nothing(tmp_path: Path) -> None:
    _ok(["sync", "--limit-per-chat", "1"], tmp_path)
    message = _refused(["sync", "--session", "defualt"], tmp_path)
    assert "no session named 'defualt' (sessions: default): pass --create" in message
    chat = Network.from_scale("tiny", 1).chat_jids()[0]
    assert "no session named 'defualt'" in _refused(
        ["history", "--session", "defualt", "--chat", chat], tmp_path
    )
    assert _session_names(tmp_path) == ["default"]
    _ok(["sync", "--session", "second", "--create", "--limit-per-chat", "1"], tmp_path)
    assert _session_names(tmp_path) == ["default", "second"]


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["session", "list"],
        ["webhooks", "list"],
        ["avatars", "status"],
        ["cluster", "status"],
        ["history", "--chat", "12345678@s.whatsapp.net"],
    ],
)
def test_reading_a_missing_data_dir_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    message = _refused(args, missing)
    assert f"no data directory {missing}" in message
    assert list(tmp_path.iterdir()) == []


def test_reading_a_data_dir_without_a_database_creates_nothing(tmp_path: Path) -> None:
    assert "no database at" in _refused(["stats"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_make_sync_and_make_run_use_different_data_dirs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dirs = {
        target: re.findall(r"--data-dir (\S+)", body)
        for target, body in re.findall(r"^(\w+):.*\n((?:\t.*\n)+)", makefile, re.M)
    }
    assert dirs["run"] == ["wasync-data"]
    assert set(dirs["sync"]) == {"wasync-sync-data"}


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"wasync {__version__}"


def _commands(args: list[str]) -> list[list[str]]:
    """Every command and group, found from the help itself."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    found = [args]
    if "Commands" in result.stdout:
        section = result.stdout.split("Commands", 1)[1]
        for name in re.findall(r"^│ (\S+) ", section, re.M):
            found += _commands([*args, name])
    return found


def test_help_is_clean_everywhere() -> None:
    commands = _commands([])
    assert len(commands) > 20
    for args in commands:
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, args
        text = result.stdout
        assert not re.search(r"<(str|bool|int|float|path)[^>]*>", text), (args, text)
        assert not re.search(r"\w \.", text), (args, text)  # a dropped "[default: …]"


def test_inputs_are_checked_before_anything_is_made(tmp_path: Path) -> None:
    for args, expected in (
        (["sync", "--scale", "huge"], "unknown scale 'huge'"),
        (["sync", "--engine", "nope"], "unknown engine 'nope'"),
        (["sync", "--session", "../x"], "invalid session name"),
    ):
        assert expected in _refused(args, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_second_sync_reports_no_new_messages(tmp_path: Path) -> None:
    first = _ok(["sync", "--limit-per-chat", "4"], tmp_path)
    assert first["new_messages"] == first["messages"] and first["messages"] > 0
    again = _ok(["sync", "--limit-per-chat", "4"], tmp_path)
    assert again["messages"] == first["messages"] and again["new_messages"] == 0
    more = _ok(["sync", "--limit-per-chat", "6"], tmp_path)
    stats = _ok(["stats"], tmp_path)
    assert more["new_messages"] == stats["messages"] - first["messages"] > 0
    table = runner.invoke(
        app, ["sync", "--limit-per-chat", "6", "--data-dir", str(tmp_path)], env={"COLUMNS": "120"}
    )
    assert re.search(r"messages fetched\s+│?\s*\d+", table.stdout)
    assert re.search(r"new messages\s+│?\s*0\b", table.stdout)


def test_a_restored_simulator_session_gets_its_own_network(tmp_path: Path) -> None:
    """`wasync serve` builds a stored session with its stored seed, scale and identities."""
    factory = EngineFactory(Settings(data_dir=tmp_path))  # defaults: tiny, seed 1, no LIDs
    stored = {"seed": 4, "scale": "small", "lid_fraction": 0.5, "late_mappings": True}
    engine = factory.build("s", "simulator", options=stored)
    network = engine.network  # type: ignore[attr-defined]
    expected = Network.from_scale("small", 4, lid_fraction=0.5, late_mappings=True)
    assert network.chat_jids() == expected.chat_jids()
    assert factory.options_for("simulator") == {
        "seed": 1,
        "scale": "tiny",
        "lid_fraction": 0.0,
        "late_mappings": False,
    }


def test_history_asks_the_network_its_session_was_synced_from(tmp_path: Path) -> None:
    """A session synced with LIDs keeps them: `history` (which has no such flags) draws
    the same network, so its chats are found."""
    synced = CliRunner().invoke(
        app,
        ["sync", "--data-dir", str(tmp_path), "--lid-fraction", "0.5", "--late-mappings",
         "--limit-per-chat", "3", "--json"],
    )  # fmt: skip
    assert synced.exit_code == 0, synced.output
    db = Database(sqlite_url_for(tmp_path))
    try:
        with db.read() as conn:
            row = find_session(conn, "default")
            chat = conn.execute(
                select(chats.c.jid).where(chats.c.jid.like("%@lid")).limit(1)
            ).scalar_one()
    finally:
        db.close()
    assert row is not None and row.engine_options is not None
    assert row.engine_options["lid_fraction"] == 0.5 and row.engine_options["late_mappings"]
    history = CliRunner().invoke(
        app, ["history", "--data-dir", str(tmp_path), "--chat", chat, "--json"]
    )
    assert history.exit_code == 0, history.output


def test_history_on_the_demos_data_uses_the_demos_network(tmp_path: Path) -> None:
    """The demo's session is made with the demo's scale (small), not the default."""
    settings = Settings(data_dir=tmp_path)

    async def start() -> None:
        runtime = Runtime(settings, db=Database(f"sqlite:///{tmp_path / 'wasync.db'}"))
        runtime.manager.engines = EngineFactory(settings, SimulatorOptions(scale="small", seed=5))
        control, _ = api_services(runtime)
        await runtime.start()
        try:
            await _start_demo(control, DemoOptions(limit_per_chat=0))
        finally:
            await runtime.stop()

    asyncio.run(start())
    db = Database(f"sqlite:///{tmp_path / 'wasync.db'}")
    try:
        with db.read() as conn:
            (row,) = list_sessions(conn)
    finally:
        db.close()
    assert row.name == "demo" and row.engine_options == {
        "seed": 5,
        "scale": "small",
        "lid_fraction": 0.0,
        "late_mappings": False,
    }
