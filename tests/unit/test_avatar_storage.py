"""Stored avatars: names that cannot escape, atomic writes, what is served; on the local
store and the database store."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from wasync.avatars.download import PictureRejected, check_picture
from wasync.avatars.storage import AvatarStorage, file_name_for, jid_of_file_name
from wasync.engines.simulator.media import padded_jpeg_chunks, picture_jpeg
from wasync.errors import DomainError, InvalidJID
from wasync.media.database import DatabaseMediaStore
from wasync.media.local import LocalMediaStore
from wasync.media.store import MediaStore
from wasync.store.db import Database

ESCAPES = [
    "../../etc/passwd",
    "../x@s.whatsapp.net",
    "5511999990000@../../s.whatsapp.net",
    "..@g.us",
    "/etc/passwd@s.whatsapp.net",
    "5511999990000@s.whatsapp.net/../../x",
    "5511999990000@s.whatsapp.net\x00.jpg",
    "a/b@g.us",
    "..\\..\\x@lid",
    "%2e%2e%2f@g.us",
    "5511999990000@s.whatsapp.net:..",
    "",
]


@pytest.fixture(params=["local", "database"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], MediaStore]]:
    """A media store under a root (the local store) or in a SQLite database beside it."""
    opened: list[Database] = []

    def make(root: Path) -> MediaStore:
        if request.param == "local":
            return LocalMediaStore(root)
        db = Database(f"sqlite:///{root.parent / 'wasync.db'}")
        db.migrate()
        opened.append(db)
        return DatabaseMediaStore(db)

    yield make
    for db in opened:
        db.close()


@pytest.mark.parametrize("raw", ESCAPES)
def test_a_jid_that_would_escape_is_not_a_jid(
    tmp_path: Path, raw: str, make_store: Callable[[Path], MediaStore]
) -> None:
    storage = AvatarStorage(make_store(tmp_path / "media"))
    with pytest.raises(InvalidJID):
        file_name_for(raw)
    with pytest.raises(InvalidJID):
        storage.key_for("default", raw)
    with pytest.raises(InvalidJID):
        storage.write("default", raw, b"x")
    assert not (tmp_path / "media").exists()


@pytest.mark.parametrize("session", ["..", ".", "../x", "a/b", "", ".hidden", "a\\b"])
def test_a_session_name_that_would_escape_is_refused(
    tmp_path: Path, session: str, make_store: Callable[[Path], MediaStore]
) -> None:
    storage = AvatarStorage(make_store(tmp_path / "media"))
    with pytest.raises(DomainError):
        storage.key_for(session, "5511999990000@s.whatsapp.net")
    assert storage.stat_served(session, "5511999990000@s.whatsapp.net.jpg") is None
    assert storage.read_served(session, "5511999990000@s.whatsapp.net.jpg") is None


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("5511999990000@s.whatsapp.net", "5511999990000@s.whatsapp.net.jpg"),
        ("+5511999990000@c.us", "5511999990000@s.whatsapp.net.jpg"),
        ("5511999990000:3@s.whatsapp.net", "5511999990000@s.whatsapp.net.jpg"),
        ("120363041234567890@G.US", "120363041234567890@g.us.jpg"),
        ("5511999990000-1612345678@g.us", "5511999990000-1612345678@g.us.jpg"),
        ("123456789012345@lid", "123456789012345@lid.jpg"),
    ],
)
def test_every_spelling_of_an_account_names_one_object(
    tmp_path: Path, raw: str, name: str, make_store: Callable[[Path], MediaStore]
) -> None:
    storage = AvatarStorage(make_store(tmp_path / "media"))
    assert storage.key_for("default", raw) == f"avatars/default/{name}"
    assert name == file_name_for(raw)
    assert jid_of_file_name(name) == name.removesuffix(".jpg")
    assert storage.url_for("default", raw) == f"/media/avatars/default/{name}"


@pytest.mark.parametrize(
    "name",
    [
        "5511999990000@c.us.jpg",  # an alias, not the canonical spelling we write
        "5511999990000@s.whatsapp.net",
        "5511999990000@s.whatsapp.net.png",
        "..",
        "../5511999990000@s.whatsapp.net.jpg",
        ".5511999990000@s.whatsapp.net.jpg.abc.tmp",
        "wasync.db",
    ],
)
def test_only_canonical_avatar_names_are_served(
    tmp_path: Path, name: str, make_store: Callable[[Path], MediaStore]
) -> None:
    store = make_store(tmp_path / "media")
    storage = AvatarStorage(store)
    storage.write("default", "5511999990000@s.whatsapp.net", picture_jpeg("x", "1"))
    if isinstance(store, LocalMediaStore):
        planted = tmp_path / "media" / "avatars" / "default" / name.split("/")[-1]
        if not planted.exists():
            planted.write_bytes(b"secret")
    assert storage.stat_served("default", name) is None
    assert storage.read_served("default", name) is None


def test_a_symlink_planted_in_the_folder_does_not_lead_outside(tmp_path: Path) -> None:
    storage = AvatarStorage(LocalMediaStore(tmp_path / "media"))
    secret = tmp_path / "secret.txt"
    secret.write_text("api key")
    folder = tmp_path / "media" / "avatars" / "default"
    folder.mkdir(parents=True)
    os.symlink(secret, folder / "5511999990000@s.whatsapp.net.jpg")
    assert storage.stat_served("default", "5511999990000@s.whatsapp.net.jpg") is None
    assert storage.read_served("default", "5511999990000@s.whatsapp.net.jpg") is None
    assert not storage.exists("default", "5511999990000@s.whatsapp.net")
    os.symlink(tmp_path, tmp_path / "media" / "avatars" / "linked")
    assert storage.read_served("linked", "secret.txt") is None
    # Deleting the session behind a linked folder removes the link only.
    storage.remove_session("linked")
    assert secret.read_text() == "api key"


def test_writes_are_atomic_and_leave_nothing_behind(tmp_path: Path) -> None:
    storage = AvatarStorage(LocalMediaStore(tmp_path))
    jid = "5511999990000@s.whatsapp.net"
    folder = tmp_path / "avatars" / "default"
    folder.mkdir(parents=True)
    # What a worker killed mid-write leaves behind is cleaned on the next write.
    (folder / f".{jid}.jpg.x1y2.tmp").write_bytes(b"half a pict")
    first = picture_jpeg(jid, "1")
    storage.write("default", jid, first)
    path = folder / f"{jid}.jpg"
    assert path.read_bytes() == first
    second = picture_jpeg(jid, "2")
    storage.write("default", jid, second)
    assert path.read_bytes() == second
    assert sorted(p.name for p in folder.iterdir()) == [f"{jid}.jpg"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # the owner's alone


def test_write_serve_remove(tmp_path: Path, make_store: Callable[[Path], MediaStore]) -> None:
    storage = AvatarStorage(make_store(tmp_path / "media"))
    jid = "5511999990000@s.whatsapp.net"
    second = picture_jpeg(jid, "2")
    storage.write("default", jid, picture_jpeg(jid, "1"))
    storage.write("default", jid, second)
    assert storage.exists("default", jid) and storage.read("default", jid) == second
    served = storage.read_served("default", f"{jid}.jpg")
    assert served is not None
    data, digest = served
    assert data == second and digest == hashlib.sha256(second).hexdigest()
    found = storage.stat_served("default", f"{jid}.jpg")
    assert found is not None and (found.size, found.sha256) == (len(second), digest)
    assert storage.remove("default", jid) and not storage.remove("default", jid)
    assert storage.read_served("default", f"{jid}.jpg") is None
    assert not storage.exists("default", jid)


def jpeg(size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, fmt)
    return out.getvalue()


def test_check_picture_accepts_a_real_jpeg_only() -> None:
    assert check_picture(picture_jpeg("x", "1"), 10_000_000) == (96, 96)
    padded = b"".join(padded_jpeg_chunks(picture_jpeg("x", "1"), 300_000))
    assert len(padded) > 250_000 and check_picture(padded, 10_000_000) == (96, 96)
    bad = {
        "empty": b"",
        "html": b"<html><body>502 Bad Gateway</body></html>",
        "png": jpeg((10, 10), "PNG"),
        "truncated": jpeg((64, 64))[:-200],
        "huge": jpeg((2_000, 1_000)),
    }
    for what, data in bad.items():
        with pytest.raises(PictureRejected):
            check_picture(data, max_pixels=1_000_000)
        assert what  # each case named for the failure report
