"""File modes: the mirror (every message, webhook secrets) is readable by its owner only.

Tests run under the usual umask 022, which would leave new files 0644 and
directories 0755: what wasync creates must be 0600 and 0700 all the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wasync.api.media_cache import MediaCache
from wasync.avatars.storage import AvatarStorage
from wasync.cli import app
from wasync.files import secure_data_dir
from wasync.media.local import LocalMediaStore
from wasync.store.db import Database
from wasync.store.sessions import ensure_session


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_database_and_its_wal_are_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    db = Database(f"sqlite:///{data / 'wasync.db'}")
    try:
        db.migrate()
        with db.write() as conn:
            ensure_session(conn, "default", "simulator")
        with db.read() as conn:  # both connections open: the WAL and its index exist
            files = sorted(p.name for p in data.iterdir())
            assert files == ["wasync.db", "wasync.db-shm", "wasync.db-wal"]
            assert {name: mode(data / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(data) == 0o700
    finally:
        db.close()


def test_an_existing_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "wasync.db"
    first = Database(f"sqlite:///{path}")
    first.migrate()
    first.close()
    # As an earlier release left them; a WAL and index left by a crash, too.
    for name in ("wasync.db", "wasync.db-wal", "wasync.db-shm"):
        (tmp_path / name).touch()
        os.chmod(tmp_path / name, 0o644)
    again = Database(f"sqlite:///{path}")
    try:
        again.migrate()
        for name in ("wasync.db", "wasync.db-wal", "wasync.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        again.close()


def test_an_open_data_directory_is_tightened_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    with caplog.at_level(logging.WARNING):
        secure_data_dir(data)
    assert mode(data) == 0o700
    [record] = caplog.records
    assert str(data) in record.getMessage() and "0755" in record.getMessage()
    caplog.clear()
    secure_data_dir(data)  # already private: nothing to say
    assert caplog.records == []
    fresh = tmp_path / "fresh" / "data"
    secure_data_dir(fresh)
    assert mode(fresh) == 0o700 and caplog.records == []


def test_commands_tighten_the_data_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    with caplog.at_level(logging.WARNING):
        # (stats would refuse: a directory holding no database is not a mirror)
        args = ["sync", "--limit-per-chat", "1", "--data-dir", str(data), "--json"]
        out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert mode(data) == 0o700 and mode(data / "wasync.db") == 0o600
    assert [r.getMessage() for r in caplog.records if "0700" in r.getMessage()]


def test_media_files_are_private(tmp_path: Path) -> None:
    media = tmp_path / "media"
    avatars = AvatarStorage(LocalMediaStore(media))
    avatars.write("default", "5511999990000@s.whatsapp.net", b"\xff\xd8 picture")
    path = media / "avatars" / "default" / "5511999990000@s.whatsapp.net.jpg"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(media / "avatars") == 0o700
    assert mode(media) == 0o700

    cache = MediaCache(LocalMediaStore(media))
    key = cache.key_for(1, "chat@s.whatsapp.net", "sender@s.whatsapp.net", "M1")

    async def download() -> bytes:
        return b"media bytes"

    asyncio.run(cache.fetch(key, download, None))
    cached = cache.store.local_path(key)
    assert cached is not None
    assert mode(cached) == 0o600
    folder = cached.parent
    while folder != tmp_path:
        assert mode(folder) == 0o700, folder
        folder = folder.parent
