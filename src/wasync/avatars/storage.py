"""Avatar files on disk: `<data-dir>/media/avatars/<session>/<jid>.jpg`.

A path can only escape the avatars folder if a name part could carry `/`, `..` or a
drive; here both parts are validated by construction: the session name by
`validate_session_name` (letters, digits, `._-`, never `.` or `..`) and the file name
is the canonical form of a parsed JID (digits, `@`, a known server name) plus
`.jpg`. Serving resolves the path and checks containment anyway, so a symlink
planted in the folder cannot lead outside it either.

Writes are atomic: a temporary file in the same folder, fsync, rename, fsync of the
folder; a reader sees the old picture or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Final

from wasync.domain.jid import parse_jid
from wasync.errors import InvalidJID
from wasync.files import private_dir
from wasync.store.sessions import validate_session_name

URL_PREFIX: Final = "/media/avatars"
SUFFIX: Final = ".jpg"
# What a canonical JID can contain; checked again so a future JID form with other
# characters fails loudly here instead of producing a surprising file name.
_SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z@._-]*")
_TEMP_SUFFIX: Final = ".tmp"


def file_name_for(jid: str) -> str:
    """The avatar file name of a JID in any spelling; raises InvalidJID."""
    canonical = str(parse_jid(jid))
    if not _SAFE_NAME.fullmatch(canonical) or ".." in canonical:
        raise InvalidJID(f"JID {canonical!r} cannot name an avatar file")
    return canonical + SUFFIX


def jid_of_file_name(name: str) -> str | None:
    """The JID an avatar file name stands for, or None when it is not one we write."""
    if not name.endswith(SUFFIX):
        return None
    stem = name[: -len(SUFFIX)]
    try:
        canonical = str(parse_jid(stem))
    except InvalidJID:
        return None
    # Only the canonical spelling: one file per account, no aliases.
    return canonical if canonical == stem and file_name_for(canonical) == name else None


class AvatarStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._etags: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._etag_lock = threading.Lock()

    def session_dir(self, session: str) -> Path:
        return self.root / validate_session_name(session)

    def path_for(self, session: str, jid: str) -> Path:
        return self.session_dir(session) / file_name_for(jid)

    def url_for(self, session: str, jid: str) -> str:
        """The path wasync serves the picture at (what `profile_picture` holds)."""
        return f"{URL_PREFIX}/{validate_session_name(session)}/{file_name_for(jid)}"

    def exists(self, session: str, jid: str) -> bool:
        return self.path_for(session, jid).is_file()

    def write(self, session: str, jid: str, data: bytes) -> Path:
        """Store a picture atomically; returns its path."""
        path = self.path_for(session, jid)
        folder = private_dir(path.parent)
        self._remove_leftovers(path)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_dir(folder)
        return path

    def remove(self, session: str, jid: str) -> bool:
        path = self.path_for(session, jid)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    @staticmethod
    def _remove_leftovers(path: Path) -> None:
        # A worker killed mid-write leaves its temp file behind. Only the holder of the
        # job's lease writes this JID, so any temp file of it is abandoned.
        for leftover in path.parent.glob(f".{path.name}.*{_TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def served_file(self, session: str, name: str) -> Path | None:
        """The file behind `/media/avatars/<session>/<name>`, or None (never outside root)."""
        try:
            folder = self.session_dir(session)
        except ValueError:
            return None
        if jid_of_file_name(name) is None:
            return None
        path = folder / name
        try:
            resolved = path.resolve(strict=True)
            root = self.root.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return None
        return resolved

    def read_served(self, session: str, name: str) -> tuple[bytes, str] | None:
        """Bytes and SHA-256 of `/media/avatars/<session>/<name>`, or None if there is none."""
        path = self.served_file(session, name)
        if path is None:
            return None
        try:
            return self.read_with_etag(path)
        except OSError:  # removed or replaced in between
            return None

    def read_with_etag(self, path: Path) -> tuple[bytes, str]:
        """The bytes of a stored picture and their SHA-256 (hex), hashed once per version."""
        # fstat of the open file: a rename in between cannot pair new bytes with old stat.
        with path.open("rb") as f:
            stat = os.fstat(f.fileno())
            data = f.read()
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._etag_lock:
            cached = self._etags.get(path)
        if cached is not None and cached[0] == version:
            return data, cached[1]
        digest = hashlib.sha256(data).hexdigest()
        with self._etag_lock:
            if len(self._etags) > 10_000:  # bounded: a cache, not an index
                self._etags.clear()
            self._etags[path] = (version, digest)
        return data, digest


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not possible on Windows.
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
