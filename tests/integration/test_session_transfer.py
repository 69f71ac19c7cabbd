"""Sealed session files: byte-for-byte round trips, wrong keys refused, nothing half-written."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from wasync.cli import app
from wasync.sessions import crypto
from wasync.sessions.crypto import HEADER_SIZE, Manifest, Secret, SessionFileError, WrongKey
from wasync.sessions.location import SessionStore, paired_device, session_file
from wasync.sessions.transfer import export_session, install_session, read_sealed

runner = CliRunner()
KEY = base64.b64encode(bytes(range(32))).decode()
DEVICE = "5511977770007:12@s.whatsapp.net"


def make_session(data_dir: Path, name: str = "alpha", device: str | None = DEVICE) -> Path:
    """A whatsmeow-shaped session database (the device table is what wasync reads)."""
    path = session_file(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY, lid TEXT, push_name TEXT)")
    conn.execute(
        "CREATE TABLE whatsmeow_identity_keys (our_jid TEXT, their_id TEXT, identity BLOB)"
    )
    if device is not None:
        conn.execute(
            "INSERT INTO whatsmeow_device VALUES (?, ?, ?)", (device, "7777000000007:12@lid", "Me")
        )
        conn.execute(
            "INSERT INTO whatsmeow_identity_keys VALUES (?, ?, ?)", (device, "x", os.urandom(32))
        )
    conn.commit()
    conn.close()
    return path


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_export_import_round_trip_is_byte_for_byte(tmp_path: Path) -> None:
    source = make_session(tmp_path / "laptop")
    original = source.read_bytes()
    sealed = tmp_path / "alpha.wasync"
    store = SessionStore("alpha", path=source)
    manifest = export_session(store, Secret.from_text(KEY), sealed)
    assert manifest.jid == "5511977770007@s.whatsapp.net"
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    assert original not in sealed.read_bytes()  # encrypted, not merely wrapped

    got, payload = read_sealed(sealed, Secret.from_text(KEY))
    assert got == manifest and payload == original
    path, device = install_session(tmp_path / "server", got, payload, name=None, force=False)
    assert path.read_bytes() == original
    assert device.user_jid == "5511977770007@s.whatsapp.net" and device.device == 12
    assert paired_device(SessionStore("alpha", path=path)) == device


def test_passphrase_files_use_scrypt_and_need_the_passphrase(tmp_path: Path) -> None:
    payload = b"not really sqlite"
    manifest = Manifest("s", None, 0, crypto.hashlib.sha256(payload).hexdigest(), len(payload))
    blob = crypto.seal(payload, manifest, Secret.from_passphrase("correct horse battery"))
    assert blob[:8] == crypto.MAGIC and blob[9] == crypto.KDF_SCRYPT
    assert crypto.open_sealed(blob, Secret.from_passphrase("correct horse battery"))[1] == payload
    with pytest.raises(WrongKey, match="passphrase does not open"):
        crypto.open_sealed(blob, Secret.from_passphrase("wrong horse battery"))
    with pytest.raises(WrongKey, match="sealed with a passphrase"):
        crypto.open_sealed(blob, Secret.from_text(KEY))
    with pytest.raises(SessionFileError, match="too short"):
        Secret.from_passphrase("short")


def test_the_header_is_authenticated(tmp_path: Path) -> None:
    payload = b"x" * 100
    manifest = Manifest("s", None, 0, crypto.hashlib.sha256(payload).hexdigest(), len(payload))
    blob = bytearray(crypto.seal(payload, manifest, Secret.from_text(KEY)))
    for offset in (13, HEADER_SIZE - 1):  # a salt byte, a nonce byte
        tampered = bytearray(blob)
        tampered[offset] ^= 1
        with pytest.raises(WrongKey):
            crypto.open_sealed(bytes(tampered), Secret.from_text(KEY))
    blob[8] = 9  # a version from the future
    with pytest.raises(SessionFileError, match="format version 9"):
        crypto.open_sealed(bytes(blob), Secret.from_text(KEY))
    with pytest.raises(SessionFileError, match="not a wasync session file"):
        crypto.open_sealed(b"SQLite format 3\x00" + bytes(100), Secret.from_text(KEY))


def test_keys_in_hex_or_base64_are_keys_anything_else_a_passphrase() -> None:
    raw = bytes(range(32))
    assert Secret.from_text(raw.hex()).key == raw
    assert Secret.from_text(base64.urlsafe_b64encode(raw).decode().rstrip("=")).key == raw
    assert Secret.from_text("a long enough passphrase").passphrase == "a long enough passphrase"


def _cli(args: list[str], key: str | None = KEY) -> Result:
    # None unsets the variable, whatever the surrounding environment holds.
    return runner.invoke(app, args, env={crypto.KEY_ENV: key})


def test_cli_export_import_and_list(tmp_path: Path) -> None:
    laptop, server = tmp_path / "laptop", tmp_path / "server"
    original = make_session(laptop).read_bytes()
    sealed = tmp_path / "alpha.wasync"
    out = _cli(["session", "export", "alpha", "--out", str(sealed), "--data-dir", str(laptop)])
    assert out.exit_code == 0, out.output

    out = _cli(["session", "import", str(sealed), "--data-dir", str(server)])
    assert out.exit_code == 0, out.output
    assert session_file(server, "alpha").read_bytes() == original

    listed = runner.invoke(app, ["session", "list", "--json", "--data-dir", str(server)])
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["name"] == "alpha" and row["paired"] is True
    assert row["jid"] == "5511977770007@s.whatsapp.net"
    assert row["status"] == "disconnected" and "imported from alpha.wasync" in row["reason"]

    # Importing over an existing session needs --force; --name imports a second copy.
    again = _cli(["session", "import", str(sealed), "--data-dir", str(server)])
    assert again.exit_code == 1 and "already exists" in again.stderr
    renamed = _cli(["session", "import", str(sealed), "--name", "beta", "--data-dir", str(server)])
    assert renamed.exit_code == 0
    assert session_file(server, "beta").read_bytes() == original
    forced = _cli(["session", "import", str(sealed), "--force", "--data-dir", str(server)])
    assert forced.exit_code == 0


def test_wrong_key_is_refused_and_leaves_nothing_behind(tmp_path: Path) -> None:
    laptop, server = tmp_path / "laptop", tmp_path / "server"
    make_session(laptop)
    sealed = tmp_path / "alpha.wasync"
    exported = _cli(["session", "export", "alpha", "--out", str(sealed), "--data-dir", str(laptop)])
    assert exported.exit_code == 0
    server.mkdir()
    wrong = base64.b64encode(bytes(32)).decode()
    out = _cli(["session", "import", str(sealed), "--data-dir", str(server)], key=wrong)
    assert out.exit_code == 1
    assert "key does not open this session file" in out.stderr
    assert "Traceback" not in out.output
    assert _files(server) == []  # no session file, no temp file, not even a database

    # A damaged payload is refused before anything is renamed into place.
    manifest = Manifest("alpha", None, 0, crypto.hashlib.sha256(b"junk").hexdigest(), 4)
    with pytest.raises(SessionFileError, match=r"damaged|no paired device"):
        install_session(server, manifest, b"junk", name=None, force=False)
    assert not session_file(server, "alpha").exists()
    assert [p for p in _files(server) if p.endswith(".tmp")] == []


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    make_session(tmp_path, "lonely", device=None)
    out = _cli(
        ["session", "export", "lonely", "--out", str(tmp_path / "x"), "--data-dir", str(tmp_path)]
    )
    assert out.exit_code == 1 and "is not paired" in out.stderr
    assert not (tmp_path / "x").exists()
    no_key = _cli(
        ["session", "export", "lonely", "--out", str(tmp_path / "x"), "--data-dir", str(tmp_path)],
        key=None,
    )
    assert no_key.exit_code == 1
    assert crypto.KEY_ENV in no_key.stderr
    missing = _cli(["session", "import", str(tmp_path / "nope"), "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
