"""Avatar files: names that cannot escape the folder, atomic writes, what is served."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from wasync.avatars.download import PictureRejected, check_picture
from wasync.avatars.storage import AvatarStorage, file_name_for, jid_of_file_name
from wasync.engines.simulator.media import padded_jpeg_chunks, picture_jpeg
from wasync.errors import DomainError, InvalidJID

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


@pytest.mark.parametrize("raw", ESCAPES)
def test_a_jid_that_would_escape_is_not_a_jid(tmp_path: Path, raw: str) -> None:
    storage = AvatarStorage(tmp_path / "avatars")
    with pytest.raises(InvalidJID):
        file_name_for(raw)
    with pytest.raises(InvalidJID):
        storage.path_for("default", raw)
    with pytest.raises(InvalidJID):
        storage.write("default", raw, b"x")
    assert not (tmp_path / "avatars").exists()


@pytest.mark.parametrize("session", ["..", ".", "../x", "a/b", "", ".hidden", "a\\b"])
def test_a_session_name_that_would_escape_is_refused(tmp_path: Path, session: str) -> None:
    storage = AvatarStorage(tmp_path)
    with pytest.raises(DomainError):
        storage.path_for(session, "5511999990000@s.whatsapp.net")
    assert storage.served_file(session, "5511999990000@s.whatsapp.net.jpg") is None


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
def test_every_spelling_of_an_account_names_one_file_inside_the_folder(
    tmp_path: Path, raw: str, name: str
) -> None:
    storage = AvatarStorage(tmp_path / "avatars")
    path = storage.path_for("default", raw)
    assert path.name == name == file_name_for(raw)
    assert path.parent == tmp_path / "avatars" / "default"
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
def test_only_canonical_avatar_names_are_served(tmp_path: Path, name: str) -> None:
    storage = AvatarStorage(tmp_path / "avatars")
    storage.write("default", "5511999990000@s.whatsapp.net", picture_jpeg("x", "1"))
    planted = tmp_path / "avatars" / "default" / name.split("/")[-1]
    if not planted.exists():
        planted.write_bytes(b"secret")
    assert storage.served_file("default", name) is None


def test_a_symlink_planted_in_the_folder_does_not_lead_outside(tmp_path: Path) -> None:
    storage = AvatarStorage(tmp_path / "avatars")
    secret = tmp_path / "secret.txt"
    secret.write_text("api key")
    folder = tmp_path / "avatars" / "default"
    folder.mkdir(parents=True)
    os.symlink(secret, folder / "5511999990000@s.whatsapp.net.jpg")
    assert storage.served_file("default", "5511999990000@s.whatsapp.net.jpg") is None
    os.symlink(tmp_path, tmp_path / "avatars" / "linked")
    assert storage.served_file("linked", "secret.txt") is None


def test_writes_are_atomic_and_leave_nothing_behind(tmp_path: Path) -> None:
    storage = AvatarStorage(tmp_path)
    jid = "5511999990000@s.whatsapp.net"
    folder = tmp_path / "default"
    folder.mkdir()
    # What a worker killed mid-write leaves behind is cleaned on the next write.
    (folder / f".{jid}.jpg.x1y2.tmp").write_bytes(b"half a pict")
    first = picture_jpeg(jid, "1")
    path = storage.write("default", jid, first)
    assert path.read_bytes() == first
    second = picture_jpeg(jid, "2")
    storage.write("default", jid, second)
    assert path.read_bytes() == second
    assert sorted(p.name for p in folder.iterdir()) == [f"{jid}.jpg"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # the owner's alone
    served = storage.served_file("default", f"{jid}.jpg")
    assert served is not None
    data, digest = storage.read_with_etag(served)
    assert data == second and len(digest) == 64
    assert storage.remove("default", jid) and not storage.remove("default", jid)
    assert storage.read_served("default", f"{jid}.jpg") is None


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
