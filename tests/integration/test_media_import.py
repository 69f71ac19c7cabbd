"""`wasync media import`: local files copied into the database store, once."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wasync.avatars.storage import AvatarStorage
from wasync.cli import app
from wasync.media.database import DatabaseMediaStore
from wasync.media.layout import message_media_key
from wasync.media.local import LocalMediaStore
from wasync.store.db import Database
from wasync.store.sessions import ensure_session

runner = CliRunner()
ALICE = "5511999990001@s.whatsapp.net"
BOB = "5511999990002@s.whatsapp.net"


def run_import(db_url: str, data_dir: Path) -> dict[str, object]:
    args = ["media", "import", "--data-dir", str(data_dir), "--database", db_url, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def make_sessions(db_url: str, *names: str) -> dict[str, int]:
    db = Database(db_url)
    db.migrate()
    try:
        with db.write() as conn:
            return {name: ensure_session(conn, name, "simulator") for name in names}
    finally:
        db.close()


def test_local_media_are_copied_into_the_database_once(db_url: str, tmp_path: Path) -> None:
    ids = make_sessions(db_url, "default", "other")
    data_dir = tmp_path / "data"
    local = LocalMediaStore(data_dir / "media")
    pictures = AvatarStorage(local)
    pictures.write("default", ALICE, b"\xff\xd8 alice")
    pictures.write("other", BOB, b"\xff\xd8 bob")
    pictures.write("other", ALICE, b"\xff\xd8 alice")  # same bytes: one blob
    media_key = message_media_key(ids["default"], ALICE, ALICE, "M1")
    local.put(media_key, b"a voice note")
    # A deleted session's leftovers: in the database nothing would ever delete them.
    pictures.write("gone", ALICE, b"\xff\xd8 gone")
    local.put(message_media_key(999, ALICE, ALICE, "M1"), b"gone too")
    # Not something wasync writes: a name no store takes, a link leading outside.
    (data_dir / "media" / "avatars" / "default" / "bad name.jpg").write_bytes(b"x")
    (tmp_path / "secret").write_bytes(b"secret")
    (data_dir / "media" / "avatars" / "default" / "link.jpg").symlink_to(tmp_path / "secret")

    first = run_import(db_url, data_dir)
    assert first["copied"] == 4 and first["alreadyThere"] == 0
    skipped = first["skipped"]
    assert isinstance(skipped, list) and len(skipped) == 4
    assert any("bad name.jpg" in s for s in skipped) and any("link.jpg" in s for s in skipped)
    assert sum("belongs to no session" in s for s in skipped) == 2

    db = Database(db_url)
    try:
        target = DatabaseMediaStore(db)
        shared = AvatarStorage(target)
        assert shared.read("default", ALICE) == b"\xff\xd8 alice"
        assert shared.read("other", BOB) == b"\xff\xd8 bob"
        assert shared.read("other", ALICE) == b"\xff\xd8 alice"
        assert target.get(media_key) == b"a voice note"
        found = target.stat(shared.key_for("default", ALICE))
        assert found is not None and found.content_type == "image/jpeg"
        assert target.get("avatars/default/link.jpg") is None
        assert target.keys("avatars/gone/") == [] and target.keys("messages/999/") == []
        # A name already there is left alone: the database's copy wins.
        target.put(shared.key_for("other", BOB), b"\xff\xd8 newer, from another node")
    finally:
        db.close()

    again = run_import(db_url, data_dir)
    assert again["copied"] == 0 and again["alreadyThere"] == 4
    db = Database(db_url)
    try:
        newer = AvatarStorage(DatabaseMediaStore(db)).read("other", BOB)
        assert newer == b"\xff\xd8 newer, from another node"
    finally:
        db.close()
    # The files stay where they were.
    assert pictures.read("default", ALICE) == b"\xff\xd8 alice"


def test_nothing_to_import(db_url: str, tmp_path: Path) -> None:
    make_sessions(db_url)  # a mirror with no media
    out = run_import(db_url, tmp_path / "empty")
    assert out == {"copied": 0, "bytesCopied": 0, "alreadyThere": 0, "skipped": []}


def test_a_missing_mirror_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    """A typo in --data-dir must not leave an empty database behind."""
    typo = tmp_path / "dat"
    result = runner.invoke(app, ["media", "import", "--data-dir", str(typo)])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    assert not typo.exists()


def test_the_human_report(db_url: str, tmp_path: Path) -> None:
    make_sessions(db_url, "default")
    data_dir = tmp_path / "data"
    AvatarStorage(LocalMediaStore(data_dir / "media")).write("default", ALICE, b"\xff\xd8 a")
    args = ["media", "import", "--data-dir", str(data_dir), "--database", db_url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "copied 1 objects (4 bytes) into the database; 0 were there already" in result.stdout
